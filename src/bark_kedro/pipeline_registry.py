"""Project pipelines."""
from __future__ import annotations

from kedro.pipeline import Pipeline

from bark_kedro.pipelines import evaluate, export, ingest, synthesize, tokenize, train


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    ``train`` holds the three stages, ``train_semantic``, ``train_coarse`` and ``train_fine``
    one each (the same template). ``__default__`` runs everything, in dependency order:
    ingest, tokenize, the three trainings, evaluate and synthesize. (The registry is
    explicit because ``kedro run --pipelines=<name>`` would otherwise look for a module of
    that name.) ``finetune_bark`` is the fine-tuning journey of ``conf/finetune_bark``: ingest,
    tokenize, the three trainings and ``export`` (the comparison with the base models and the
    files the original Bark plays).

    Returns:
        A mapping from pipeline names to ``Pipeline`` objects.
    """
    pipelines = {
        "ingest": ingest.create_pipeline(),
        "tokenize": tokenize.create_pipeline(),
        "train": train.create_pipeline(),
        "evaluate": evaluate.create_pipeline(),
        "synthesize": synthesize.create_pipeline(),
        "export": export.create_pipeline(),
    }
    for stage in train.STAGES:
        pipelines[f"train_{stage}"] = train.create_stage_pipeline(stage)
    pipelines["__default__"] = sum(
        (pipelines[name] for name in ("ingest", "tokenize", "train", "evaluate", "synthesize")),
        Pipeline([]),
    )
    pipelines["finetune_bark"] = sum(
        (pipelines[name] for name in ("ingest", "tokenize", "train", "export")), Pipeline([]))
    return pipelines
