"""The file MLflow runs to load a registered stage model ("models from code")."""

import mlflow

from bark_kedro.pipelines.tracking import OrbaxStageModel

mlflow.models.set_model(OrbaxStageModel())
