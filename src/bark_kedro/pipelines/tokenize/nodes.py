"""Nodes of the tokenize pipeline: each reads its inputs, calls the tokenizer library, returns
outputs."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from bark_kedro.pipelines.tokenize.params import TokenizeParams
from bark_kedro.pipelines.tracking import as_mlflow_metrics
from bark_kedro.tokenizers import corpus
from bark_kedro.tokenizers.codec import CodecTokenizer
from bark_kedro.tokenizers.report import numeric_leaves, summarize_tokenization
from bark_kedro.tokenizers.semantic import SemanticTokenizer
from bark_kedro.tokenizers.shards import ShardedTable
from bark_kedro.tokenizers.stream import TokenStream, stage_results, token_stream
from bark_kedro.tokenizers.text import text_tokenizer_from_dict

logger = logging.getLogger(__name__)
Stats = dict[str, float]


def _stream(stage: str, utterances: pd.DataFrame, tokenizer: Any, params: TokenizeParams,
            identity: dict[str, Any] | None = None, **options: Any) -> TokenStream:
    """The stage's tokens, tokenized shard by shard as the catalog entry writes them, in this
    process or on Ray (``tokenize.engine``)."""
    return token_stream(stage, utterances, tokenizer, params.engine, params.ray,
                        params.progress, identity, **options)


def fit_text_tokenizer(utterances: pd.DataFrame, params: TokenizeParams) -> dict[str, Any]:
    """The text tokenizer (vocabularies from the train split), as its JSON artifact."""
    return corpus.fit_text_tokenizer(utterances, params.text).to_dict()


def tokenize_text(utterances: pd.DataFrame, text_tokenizer: dict[str, Any],
                  params: TokenizeParams) -> TokenStream:
    """``text_tokens``, written shard by shard (rejects and figures go with the shards)."""
    return _stream("text", utterances, text_tokenizer_from_dict(text_tokenizer), params)


def fit_semantic_tokenizer(utterances: pd.DataFrame,
                           params: TokenizeParams) -> tuple[SemanticTokenizer, Stats]:
    """Features of the train split -> k-means quantizer; the tokenizer and fit figures."""
    return corpus.fit_semantic_tokenizer(utterances, params.semantic, progress=params.progress)


def tokenize_semantic(utterances: pd.DataFrame, semantic_tokenizer: SemanticTokenizer,
                      params: TokenizeParams) -> TokenStream:
    """``semantic_tokens``, written shard by shard."""
    return _stream("semantic", utterances, semantic_tokenizer, params)


def build_codec(utterances: pd.DataFrame, params: TokenizeParams) -> CodecTokenizer:
    """The EnCodec tokenizer (random weights are initialised on train-split audio)."""
    return corpus.build_codec(utterances, params.codec)


def tokenize_codec(utterances: pd.DataFrame, codec_model: CodecTokenizer,
                   params: TokenizeParams) -> TokenStream:
    """``codec_tokens``, written shard by shard."""
    c = params.codec
    codec = codec_model.with_options(device=c.device, batch_size=c.batch_size,
                                     max_batch_seconds=c.max_batch_seconds,
                                     max_chunk_seconds=c.max_chunk_seconds,
                                     cpu_workers=c.cpu_workers)
    batching = {name: getattr(c, name) for name in ("device", "batch_size", "max_batch_seconds",
                                                    "max_chunk_seconds", "cpu_workers")}
    return _stream("codec", utterances, codec, params, {"codec": batching},
                   group_seconds=c.group_seconds)


def tokenized_results(tokens: ShardedTable) -> tuple[pd.DataFrame, Stats]:
    """The rejects and throughput figures of a stage, read back from its written tokens."""
    rejects, stats = stage_results(tokens)
    logger.info("%s: %d tokenized, %d rejected, %.1f audio-s/s", tokens.folder.name,
                len(tokens), len(rejects), stats.get("audio_s_per_s", 0.0))
    return rejects, stats


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
