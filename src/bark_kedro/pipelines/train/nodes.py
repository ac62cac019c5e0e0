"""The node of the training template: it calls the training library and shapes its outputs."""

from __future__ import annotations

from typing import Any

import pandas as pd

from bark_kedro.pipelines.tracking import log_parameter_counts, mlflow_step_logger
from bark_kedro.pipelines.train.params import TrainStageParams
from bark_kedro.tokenizers.text import text_tokenizer_from_dict
from bark_kedro.training import train_stage_from_tables


def train_stage(
    text_tokens: pd.DataFrame,
    semantic_tokens: pd.DataFrame,
    codec_tokens: pd.DataFrame,
    text_tokenizer: dict[str, Any],
    semantic_tokenizer: Any,
    params: TrainStageParams,
    *,
    stage: str,
) -> tuple[tuple[Any, dict[str, Any]], dict[str, Any], dict[str, str]]:
    """Train ``stage`` (bound by the pipeline of its namespace); return the model with its
    metadata (summary and the data layout it was trained with), the summary and MLflow tags.

    Per-step and validation metrics go to MLflow while training runs; then the trainable,
    frozen and total parameter counts (``<stage>/params_*``). The adapter config of a LoRA
    run is logged with the parameters (``train_<stage>.init.lora.*``).
    """
    prefix = f"train_{stage}"
    run = train_stage_from_tables(
        {"text_tokens": text_tokens, "semantic_tokens": semantic_tokens,
         "codec_tokens": codec_tokens},
        text_vocab_size=text_tokenizer_from_dict(text_tokenizer).text_vocab_size,
        semantic_vocab_size=int(semantic_tokenizer.vocab_size),
        init=params.init,
        data=params.data,
        config=params.train.replace(stage=stage),
        run_dir=params.run_dir,
        on_metrics=mlflow_step_logger(prefix),
        on_eval=mlflow_step_logger(f"{prefix}.val"),
    )
    summary = run.summary
    log_parameter_counts(stage, summary["params"])
    tags = {f"{prefix}.{key}": str(value) for key, value in summary["device"].items()}
    tags[f"{prefix}.init_from"] = params.init.init_from
    tags[f"{prefix}.finetune"] = params.init.finetune
    if "base_digest" in summary:
        tags[f"{prefix}.base_digest"] = summary["base_digest"]
    metadata = {"summary": summary, "data": run.data_layout}
    return (run.result.model, metadata), summary, tags
