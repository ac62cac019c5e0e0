"""Nodes of the ingest pipeline: each reads its inputs, calls the audio library, returns outputs."""

from __future__ import annotations

import pandas as pd

from bark_kedro.audio.corpus import load_corpus
from bark_kedro.audio.ingest import ingest_utterances, summarize
from bark_kedro.pipelines.ingest.params import IngestParams
from bark_kedro.pipelines.tracking import as_mlflow_metrics


def list_source_utterances(params: IngestParams) -> pd.DataFrame:
    """List the configured corpus (making the demo corpus first when it is the source)."""
    return load_corpus(params.source, params.demo_corpus, progress=params.progress)


def ingest(sources: pd.DataFrame, params: IngestParams
           ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str], dict[str, str]]:
    """Validate, convert and resample every utterance; return the utterances, the rejects and
    the index of each audio folder ({utterance_id: path} of the 24 kHz and 16 kHz WAVs)."""
    utterances, rejected = ingest_utterances(
        sources, params.output_dir, params.processing, progress=params.progress
    )
    ids = utterances["utterance_id"]
    return (utterances, rejected, dict(zip(ids, utterances["audio_24k_path"], strict=True)),
            dict(zip(ids, utterances["audio_16k_path"], strict=True)))


def summarize_ingest(
    utterances: pd.DataFrame, rejected: pd.DataFrame
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Counts, hours and rejects by reason, as a report and as MLflow metrics."""
    summary = summarize(utterances, rejected)
    return summary, as_mlflow_metrics(summary)
