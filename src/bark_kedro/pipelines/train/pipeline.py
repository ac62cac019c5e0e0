"""Wiring of the training template; ``create_stage_pipeline(stage)`` instantiates it."""

from functools import partial
from typing import get_type_hints

from kedro.pipeline import Pipeline, node, pipeline

from bark_kedro.models.layout import STAGES

from .nodes import train_stage

TOKEN_TABLES = ("text_tokens", "semantic_tokens", "codec_tokens")
TOKENIZERS = ("text_tokenizer", "semantic_tokenizer")


def _template(stage: str) -> Pipeline:
    trainer = partial(train_stage, stage=stage)
    trainer.__name__ = trainer.__qualname__ = f"train_{stage}"  # for kedro-viz and the logs
    trainer.__annotations__ = get_type_hints(train_stage)  # so Kedro validates the params
    return pipeline(
        [
            node(
                trainer,
                inputs=[*TOKEN_TABLES, *TOKENIZERS, "params:train"],
                outputs=["model", "summary", "tags"],
                name=f"fit_{stage}_model",  # distinct in kedro-viz's expanded view
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
            "tags": f"train_{stage}_tags",
        },
        parameters={"params:train": f"params:train_{stage}"},
        tags=["train", f"train_{stage}"],
    )


def create_pipeline(**kwargs) -> Pipeline:
    """All three stages (``kedro run --pipeline=train``)."""
    return sum((create_stage_pipeline(stage) for stage in STAGES), Pipeline([]))
