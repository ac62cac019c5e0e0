"""Typed parameters of a training pipeline, validated by Kedro when a run starts."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bark_kedro.training import ModelInitConfig, StageDataConfig, TrainConfig


class TrainStageParams(BaseModel):
    """``params:train_<stage>`` in ``conf/<env>/parameters_train.yml``.

    ``run_dir`` holds the Orbax checkpoints of the run: a run started again on the same
    ``run_dir`` resumes from its last checkpoint; point it elsewhere (or delete it) to start
    afresh. The stage comes from the pipeline's namespace, so ``train`` has no ``stage``.
    """

    model_config = ConfigDict(extra="forbid")

    init: ModelInitConfig = Field(default_factory=ModelInitConfig)
    data: StageDataConfig = Field(default_factory=StageDataConfig)
    train: TrainConfig
    run_dir: str

    @model_validator(mode="before")
    @classmethod
    def _no_stage(cls, values: Any) -> Any:
        train = values.get("train") if isinstance(values, dict) else None
        if isinstance(train, dict) and "stage" in train:
            raise ValueError("train.stage is set by the pipeline (train_<stage>); remove it")
        return values
