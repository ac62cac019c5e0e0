"""Wiring of the evaluate pipeline."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import (
    evaluation_report,
    hear_heldout_utterances,
    synthesize_heldout_utterances,
    teacher_forced_metrics,
)

MODELS = ["semantic_model", "coarse_model", "fine_model"]
LAYOUTS = ["semantic_model_data_layout", "coarse_model_data_layout", "fine_model_data_layout"]
TOKENS = ["text_tokens", "semantic_tokens", "codec_tokens"]


def create_pipeline(**kwargs) -> Pipeline:
    """Trained models (with the data layouts saved with them) + held-out tokens -> stage
    metrics, synthesized audio, report."""
    return pipeline(
        [
            node(
                teacher_forced_metrics,
                inputs=[*MODELS, *TOKENS, *LAYOUTS, "params:evaluate"],
                outputs="teacher_forced_metrics",
                name="teacher_forced_metrics",
            ),
            node(
                synthesize_heldout_utterances,
                inputs=[*MODELS, *LAYOUTS[1:], "text_tokenizer", "codec_model", "utterances",
                        "semantic_tokens", "codec_tokens", "params:generation",
                        "params:evaluate"],
                outputs="heldout_synthesis",
                name="synthesize_heldout",
            ),
            node(
                hear_heldout_utterances,
                inputs=["heldout_synthesis", "utterances", "params:evaluate"],
                outputs=["heldout_heard", "hearing_models"],
                name="hear_heldout",
            ),
            node(
                evaluation_report,
                inputs=["heldout_heard", "teacher_forced_metrics", "codec_model",
                        "hearing_models"],
                outputs=["evaluation_report", "evaluation_metrics"],
                name="evaluation_report",
            ),
        ],
        tags="evaluate",
    )
