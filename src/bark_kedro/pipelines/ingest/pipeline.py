"""Wiring of the ingest pipeline."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import ingest, list_source_utterances, summarize_ingest


def create_pipeline(**kwargs) -> Pipeline:
    """Corpus listing -> audio folders, validated utterances and rejects -> summary."""
    return pipeline(
        [
            node(
                list_source_utterances,
                inputs="params:ingest",
                outputs="source_utterances",
                name="list_source_utterances",
            ),
            node(
                ingest,
                inputs=["source_utterances", "params:ingest"],
                outputs=["utterances", "rejected_utterances", "audio_24k", "audio_16k"],
                name="ingest_utterances",
            ),
            node(
                summarize_ingest,
                inputs=["utterances", "rejected_utterances"],
                outputs=["ingest_summary", "ingest_metrics"],
                name="summarize_ingest",
            ),
        ],
        tags="ingest",
    )
