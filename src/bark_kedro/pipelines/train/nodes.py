"""Nodes of the training template: each calls the training library and shapes its outputs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from bark_kedro.pipelines.tracking import as_mlflow_metrics, mlflow_step_logger
from bark_kedro.pipelines.train.params import TrainStageParams
from bark_kedro.tokenizers.text import text_tokenizer_from_dict
from bark_kedro.training import is_primary
from bark_kedro.training.stage_run import train_stage_from_tables

FINAL_METRICS = (
    "initial_val_loss", "final_val_loss", "final_val_top1", "final_val_top10",
    "final_val_perplexity", "final_train_loss", "padding_fraction", "tokens_per_s",
)


def stage_trainer(stage: str) -> Callable[..., tuple]:
    """The node function training ``stage`` (one per stage, so Kedro sees typed params)."""

    def train_stage(
        text_tokens: pd.DataFrame,
        semantic_tokens: pd.DataFrame,
        codec_tokens: pd.DataFrame,
        text_tokenizer: dict[str, Any],
        semantic_tokenizer: Any,
        params: TrainStageParams,
    ) -> tuple[tuple[Any, dict[str, Any]], dict[str, Any], dict, dict[str, str]]:
        """Train the stage; return (model with its summary, summary, MLflow metrics, tags)."""
        if params.train.stage != stage:
            raise ValueError(
                f"train_{stage}.train.stage is {params.train.stage!r}; it must be {stage!r}"
            )
        prefix = f"train_{stage}"
        run = train_stage_from_tables(
            {"text_tokens": text_tokens, "semantic_tokens": semantic_tokens,
             "codec_tokens": codec_tokens},
            text_vocab_size=text_tokenizer_from_dict(text_tokenizer).text_vocab_size,
            semantic_vocab_size=int(semantic_tokenizer.vocab_size),
            init=params.init,
            data=params.data,
            config=params.train,
            run_dir=params.run_dir,
            on_metrics=mlflow_step_logger(prefix),
            on_eval=mlflow_step_logger(f"{prefix}.val"),
        )
        summary = run.summary
        finals = {k: summary[k] for k in FINAL_METRICS if summary.get(k) is not None}
        tags = {f"{prefix}.{key}": str(value) for key, value in summary["device"].items()}
        tags[f"{prefix}.init_from"] = params.init.init_from
        metadata = {"summary": summary, "primary": is_primary()}
        return (run.result.model, metadata), summary, as_mlflow_metrics(finals, summary["steps"]), tags

    train_stage.__name__ = train_stage.__qualname__ = f"train_{stage}"
    return train_stage
