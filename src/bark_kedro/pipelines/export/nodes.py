"""Nodes of the export pipeline: each calls the library and shapes its outputs."""

from __future__ import annotations

from typing import Any

import pandas as pd

from bark_kedro.generation.voice import pick_prompt_utterance, voice_prompt_from_tokens
from bark_kedro.models.suno_format import load_suno_checkpoint
from bark_kedro.pipelines.export.params import ExportParams
from bark_kedro.pipelines.tracking import as_mlflow_metrics
from bark_kedro.pipelines.train.params import TrainStageParams
from bark_kedro.training import StageDataConfig, stage_metrics

STAGES = ("semantic", "coarse", "fine")
COMPARED = ("loss", "perplexity", "top1", "top10")


def compare_with_base(
    semantic_model: Any,
    coarse_model: Any,
    fine_model: Any,
    text_tokens: pd.DataFrame,
    semantic_tokens: pd.DataFrame,
    codec_tokens: pd.DataFrame,
    semantic_layout: dict[str, Any],
    coarse_layout: dict[str, Any],
    fine_layout: dict[str, Any],
    semantic_training: TrainStageParams,
    coarse_training: TrainStageParams,
    fine_training: TrainStageParams,
    params: ExportParams,
) -> dict[str, dict[str, float]]:
    """Teacher-forced metrics on the validation split of each fine-tuned stage and of the
    suno checkpoint it started from, laid out alike: ``<stage>/base_loss``,
    ``<stage>/finetuned_loss``, ... (logged as ``<stage>_against_base/...``)."""
    finetuned = {"semantic": semantic_model, "coarse": coarse_model, "fine": fine_model}
    inits = {"semantic": semantic_training.init, "coarse": coarse_training.init,
             "fine": fine_training.init}
    for stage, init in inits.items():
        if init.init_from != "suno":
            raise ValueError(f"train_{stage}.init.init_from is {init.init_from!r}: the comparison "
                             "with the base model needs the suno checkpoint it fine-tuned")
    base = {stage: load_suno_checkpoint(init.checkpoint, stage=stage,
                                        vocab=finetuned[stage].config.vocab)[0]
            for stage, init in inits.items()}
    tables = {"text_tokens": text_tokens, "semantic_tokens": semantic_tokens,
              "codec_tokens": codec_tokens}
    layouts = {"semantic": StageDataConfig(**semantic_layout),
               "coarse": StageDataConfig(**coarse_layout), "fine": StageDataConfig(**fine_layout)}
    scores = {name: stage_metrics(models, tables, layouts, params.tokens_per_batch, params.seed)
              for name, models in (("base", base), ("finetuned", finetuned))}
    flat = {f"{stage}/{name}_{metric}": scores[name][stage][metric]
            for stage in STAGES for name in scores for metric in COMPARED}
    for stage in STAGES:
        flat[f"{stage}/loss_change"] = (scores["finetuned"][stage]["loss"]
                                        - scores["base"][stage]["loss"])
    return as_mlflow_metrics(flat)


def export_bark_files(
    semantic_model: Any,
    coarse_model: Any,
    fine_model: Any,
    semantic_tokens: pd.DataFrame,
    codec_tokens: pd.DataFrame,
    params: ExportParams,
) -> dict[str, Any]:
    """What the ``bark_export`` folder holds: the three models (written as suno ``.pt`` files,
    adapters merged) and a voice prompt from one of the speaker's tokenized recordings."""
    utterance = pick_prompt_utterance(semantic_tokens, params.speaker, params.prompt_max_seconds)
    n_coarse = coarse_model.config.vocab.n_coarse_codebooks
    prompt = voice_prompt_from_tokens(semantic_tokens, codec_tokens, utterance, n_coarse)
    prompt.check(fine_model.config.vocab)
    return {"models": {"semantic": semantic_model, "coarse": coarse_model, "fine": fine_model},
            "size": params.size,
            "voices": {params.voice_name: prompt},
            "voice_sources": {params.voice_name: utterance}}
