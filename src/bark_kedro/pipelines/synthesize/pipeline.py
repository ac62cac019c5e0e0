"""Wiring of the synthesize pipeline."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import synthesize_text

MODELS = ["semantic_model", "coarse_model", "fine_model"]
# the data layouts the coarse and fine models were trained with, saved with each model
LAYOUTS = ["coarse_model_data_layout", "fine_model_data_layout"]
TOKENIZERS = ["text_tokenizer", "codec_model"]


def create_pipeline(**kwargs) -> Pipeline:
    """Models (with their saved data layouts) + tokenizers + ``params:synthesize`` ->
    ``synthesized_audio``."""
    return pipeline(
        [
            node(
                synthesize_text,
                inputs=[*MODELS, *LAYOUTS, *TOKENIZERS, "params:generation", "params:synthesize"],
                outputs="synthesized_audio",
                name="synthesize_text",
            ),
        ],
        tags="synthesize",
    )
