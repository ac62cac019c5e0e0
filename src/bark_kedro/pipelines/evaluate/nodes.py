"""Nodes of the evaluate pipeline: each calls the evaluation library and shapes its outputs."""

from __future__ import annotations

from typing import Any

import pandas as pd

from bark_kedro.evaluation.audio_metrics import summarize
from bark_kedro.evaluation.end_to_end import heldout_targets, synthesize_heldout
from bark_kedro.evaluation.hearing import Listener, drop_codec_dependent, listen_to_heldout
from bark_kedro.evaluation.report import UtteranceEvaluation, report_metrics
from bark_kedro.generation import make_synthesizer
from bark_kedro.pipelines.evaluate.params import EvaluateParams
from bark_kedro.pipelines.synthesize.params import GenerationParams
from bark_kedro.pipelines.tracking import as_mlflow_metrics
from bark_kedro.tokenizers.codec import Codec, codec_description
from bark_kedro.tokenizers.text import text_tokenizer_from_dict
from bark_kedro.training import StageDataConfig, stage_metrics


def teacher_forced_metrics(
    semantic_model: Any,
    coarse_model: Any,
    fine_model: Any,
    text_tokens: pd.DataFrame,
    semantic_tokens: pd.DataFrame,
    codec_tokens: pd.DataFrame,
    semantic_layout: dict[str, Any],
    coarse_layout: dict[str, Any],
    fine_layout: dict[str, Any],
    params: EvaluateParams,
) -> dict[str, dict[str, float]]:
    """Validation loss, perplexity, top-1/top-10 per stage, its examples laid out as the
    model's training did (the data layout saved with each model)."""
    return stage_metrics(
        {"semantic": semantic_model, "coarse": coarse_model, "fine": fine_model},
        {"text_tokens": text_tokens, "semantic_tokens": semantic_tokens,
         "codec_tokens": codec_tokens},
        {"semantic": StageDataConfig(**semantic_layout),
         "coarse": StageDataConfig(**coarse_layout), "fine": StageDataConfig(**fine_layout)},
        tokens_per_batch=params.tokens_per_batch,
        seed=params.seed,
    )


def synthesize_heldout_utterances(
    semantic_model: Any,
    coarse_model: Any,
    fine_model: Any,
    coarse_layout: dict[str, Any],
    fine_layout: dict[str, Any],
    text_tokenizer: dict[str, Any],
    codec_model: Codec,
    utterances: pd.DataFrame,
    semantic_tokens: pd.DataFrame,
    codec_tokens: pd.DataFrame,
    generation: GenerationParams,
    params: EvaluateParams,
) -> list[UtteranceEvaluation]:
    """Synthesize held-out texts and compare each with its recording through the codec
    (windows fitted with the coarse and fine models' saved training layouts)."""
    synthesizer = make_synthesizer(
        semantic_model, coarse_model, fine_model, text_tokenizer_from_dict(text_tokenizer),
        codec_model, generation.config, fit_windows_to_models=generation.fit_windows_to_models,
        bfloat16=generation.bfloat16, coarse_layout=coarse_layout, fine_layout=fine_layout,
    )
    targets = heldout_targets(utterances, codec_tokens, params.n_utterances)
    return synthesize_heldout(synthesizer, targets, semantic_tokens, codec_tokens,
                              voice=params.voice, seed=params.seed)


def hear_heldout_utterances(
    evaluations: list[UtteranceEvaluation],
    utterances: pd.DataFrame,
    params: EvaluateParams,
) -> tuple[list[UtteranceEvaluation], dict[str, str]]:
    """ASR / speaker / MOS metrics of the synthesized audio, its codec round trip and the
    original recording of each held-out utterance; and the names of the models that heard."""
    if not params.hearing.enabled:
        return evaluations, {"hearing": "disabled (evaluate.hearing.enabled: false)"}
    listener = Listener(params.hearing)
    return listen_to_heldout(evaluations, utterances, listener), listener.models()


def evaluation_report(
    evaluations: list[UtteranceEvaluation],
    teacher_forced: dict[str, dict[str, float]],
    codec_model: Codec,
    hearing_models: dict[str, str],
) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """The report folder's content and the MLflow metrics (same names in every run). Through
    a random-weight EnCodec, MCD and codec-token accuracy are left out (they measure nothing)."""
    run_facts = {"codec": codec_description(codec_model),
                 "codec_weights": codec_model.weights_source,
                 **hearing_models, "n_utterances": len(evaluations)}
    if codec_model.weights_source == "random":
        evaluations = drop_codec_dependent(evaluations)
        run_facts["left_out"] = ("mcd_db, codec_token_accuracy: a random-weight codec decodes "
                                 "every utterance to the same sound")
    report = {"utterances": evaluations, "stage_metrics": teacher_forced, "run_facts": run_facts}
    summary = summarize([u.metrics for u in evaluations])
    metrics = report_metrics({"summary": summary, "stage_metrics": teacher_forced})
    return report, as_mlflow_metrics(metrics)
