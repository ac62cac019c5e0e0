"""Wiring of the export pipeline."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import compare_with_base, export_bark_files

STAGES = ("semantic", "coarse", "fine")
MODELS = [f"{stage}_model" for stage in STAGES]


def create_pipeline(**kwargs) -> Pipeline:
    """Fine-tuned models + token tables -> metrics against the base models, and the
    ``bark_export`` folder (suno ``.pt`` files and a voice prompt ``.npz``)."""
    return pipeline(
        [
            node(
                compare_with_base,
                inputs=[*MODELS, "text_tokens", "semantic_tokens", "codec_tokens",
                        *(f"{stage}_model_data_layout" for stage in STAGES),
                        *(f"params:train_{stage}" for stage in STAGES), "params:export"],
                outputs="against_base_metrics",
                name="compare_with_base",
            ),
            node(
                export_bark_files,
                inputs=[*MODELS, "semantic_tokens", "codec_tokens", "params:export"],
                outputs="bark_export",
                name="export_bark_files",
            ),
        ],
        tags="export",
    )
