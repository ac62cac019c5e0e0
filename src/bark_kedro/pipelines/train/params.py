"""Typed parameters of a training pipeline, validated by Kedro when a run starts."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from bark_kedro.training import ModelInitConfig, StageDataConfig, TrainConfig


class TrainStageParams(BaseModel):
    """``params:train_<stage>`` in ``conf/<env>/parameters_train.yml``.

    ``run_dir`` holds the Orbax checkpoints of the run: a run started again on the same
    ``run_dir`` resumes from its last checkpoint; point it elsewhere (or delete it) to start
    afresh.
    """

    model_config = ConfigDict(extra="forbid")

    init: ModelInitConfig = Field(default_factory=ModelInitConfig)
    data: StageDataConfig = Field(default_factory=StageDataConfig)
    train: TrainConfig
    run_dir: str
