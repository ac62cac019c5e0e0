"""Wiring of the training template; ``create_stage_pipeline(stage)`` instantiates it."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import stage_trainer

STAGES = ("semantic", "coarse", "fine")
TOKEN_TABLES = ("text_tokens", "semantic_tokens", "codec_tokens")
TOKENIZERS = ("text_tokenizer", "semantic_tokenizer")


def _template(stage: str) -> Pipeline:
    return pipeline(
        [
            node(
                stage_trainer(stage),
                inputs=[*TOKEN_TABLES, *TOKENIZERS, "params:train"],
                outputs=["model", "summary", "metrics", "tags"],
                name="train",
            ),
        ]
    )


def create_stage_pipeline(stage: str) -> Pipeline:
    """The template for one stage: parameters ``train_<stage>``, model ``<stage>_model``."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    return pipeline(
        _template(stage),
        namespace=f"train_{stage}",
        inputs={*TOKEN_TABLES, *TOKENIZERS},
        outputs={
            "model": f"{stage}_model",
            "summary": f"train_{stage}_summary",
            "metrics": f"train_{stage}_metrics",
            "tags": f"train_{stage}_tags",
        },
        parameters={"params:train": f"params:train_{stage}"},
        tags=["train", f"train_{stage}"],
    )


def create_pipeline(**kwargs) -> Pipeline:
    """All three stages (``kedro run --pipeline=train``)."""
    return sum((create_stage_pipeline(stage) for stage in STAGES), Pipeline([]))
