"""Wiring of the synthesize pipeline."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import synthesize_text

MODELS = ["semantic_model", "coarse_model", "fine_model"]
TOKENIZERS = ["text_tokenizer", "codec_model"]


def create_pipeline(**kwargs) -> Pipeline:
    """Models + tokenizers + ``params:synthesize`` -> ``synthesized_audio``."""
    return pipeline(
        [
            node(
                synthesize_text,
                inputs=[*MODELS, *TOKENIZERS, "params:generation", "params:synthesize"],
                outputs="synthesized_audio",
                name="synthesize_text",
            ),
        ],
        tags="synthesize",
    )
