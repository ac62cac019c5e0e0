"""Nodes of the tokenize pipeline: each reads its inputs, calls the tokenizer library, returns
outputs."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from bark_kedro.pipelines.tokenize.params import TokenizeParams
from bark_kedro.pipelines.tracking import as_mlflow_metrics
from bark_kedro.tokenizers import corpus, ray_engine
from bark_kedro.tokenizers.codec import CodecTokenizer
from bark_kedro.tokenizers.report import numeric_leaves, summarize_tokenization
from bark_kedro.tokenizers.semantic import SemanticTokenizer
from bark_kedro.tokenizers.text import text_tokenizer_from_dict

logger = logging.getLogger(__name__)
Stats = dict[str, float]


def _on_engine(stage: str, utterances: pd.DataFrame, tokenizer: Any, params: TokenizeParams,
               **options: Any) -> tuple[pd.DataFrame, pd.DataFrame, Stats]:
    """``corpus.tokenize_<stage>`` in this process, or on Ray (``tokenize.engine``)."""
    if params.engine == "ray":
        return ray_engine.tokenize_on_ray(utterances, stage, tokenizer, params.ray, options,
                                          progress=params.progress)
    tokenize = getattr(corpus, f"tokenize_{stage}")
    return tokenize(utterances, tokenizer, **options, progress=params.progress)


def fit_text_tokenizer(utterances: pd.DataFrame, params: TokenizeParams) -> dict[str, Any]:
    """The text tokenizer (vocabularies from the train split), as its JSON artifact."""
    return corpus.fit_text_tokenizer(utterances, params.text).to_dict()


def tokenize_text(utterances: pd.DataFrame, text_tokenizer: dict[str, Any],
                  params: TokenizeParams) -> tuple[pd.DataFrame, pd.DataFrame, Stats]:
    """``text_tokens``, the text rejects and throughput figures."""
    tokenizer = text_tokenizer_from_dict(text_tokenizer)
    return _on_engine("text", utterances, tokenizer, params)


def fit_semantic_tokenizer(utterances: pd.DataFrame,
                           params: TokenizeParams) -> tuple[SemanticTokenizer, Stats]:
    """Features of the train split -> k-means quantizer; the tokenizer and fit figures."""
    return corpus.fit_semantic_tokenizer(utterances, params.semantic, progress=params.progress)


def tokenize_semantic(utterances: pd.DataFrame, semantic_tokenizer: SemanticTokenizer,
                      params: TokenizeParams) -> tuple[pd.DataFrame, pd.DataFrame, Stats]:
    """``semantic_tokens``, the semantic rejects and throughput figures."""
    return _on_engine("semantic", utterances, semantic_tokenizer, params)


def build_codec(utterances: pd.DataFrame, params: TokenizeParams) -> CodecTokenizer:
    """The EnCodec tokenizer (random weights are initialised on train-split audio)."""
    return corpus.build_codec(utterances, params.codec)


def tokenize_codec(utterances: pd.DataFrame, codec_model: CodecTokenizer,
                   params: TokenizeParams) -> tuple[pd.DataFrame, pd.DataFrame, Stats]:
    """``codec_tokens``, the codec rejects and throughput figures."""
    c = params.codec
    codec = codec_model.with_options(device=c.device, batch_size=c.batch_size,
                                     max_batch_seconds=c.max_batch_seconds,
                                     max_chunk_seconds=c.max_chunk_seconds,
                                     cpu_workers=c.cpu_workers)
    table, rejects, stats = _on_engine("codec", utterances, codec, params,
                                       group_seconds=c.group_seconds)
    logger.info("codec tokens at %.1f audio-s/s (weights: %s)", stats["audio_s_per_s"],
                codec.weights_source)
    return table, rejects, stats


def collect_rejects(text_rejects: pd.DataFrame, semantic_rejects: pd.DataFrame,
                    codec_rejects: pd.DataFrame) -> pd.DataFrame:
    """``rejected_tokenization``: every stage's rejects (utterance_id, stage, reason)."""
    return corpus.combine_rejects(text_rejects, semantic_rejects, codec_rejects)


def summarize_tokenize(utterances: pd.DataFrame, rejected: pd.DataFrame, text_stats: Stats,
                       semantic_fit_stats: Stats, semantic_stats: Stats, codec_stats: Stats,
                       codec_model: CodecTokenizer, params: TokenizeParams
                       ) -> tuple[dict[str, Any], dict[str, dict[str, float]], dict[str, str]]:
    """The report, its numbers as MLflow metrics, and the run's tokenizer tags."""
    tags = {"text_tokenizer": params.text.kind, "semantic_features": params.semantic.features,
            "semantic_quantizer": params.semantic.quantizer,
            "codec_weights": codec_model.weights_source}
    stats = {"text": text_stats, "semantic_fit": semantic_fit_stats, "semantic": semantic_stats,
             "codec": codec_stats}
    summary = summarize_tokenization(len(utterances), stats, rejected, tags)
    return summary, as_mlflow_metrics(numeric_leaves(summary)), tags
