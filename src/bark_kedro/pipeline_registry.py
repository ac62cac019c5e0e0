"""Project pipelines."""
from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

from bark_kedro.pipelines.train import STAGES, create_stage_pipeline


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    Every folder of ``pipelines/`` is a pipeline of that name (``train`` holds all three
    stages); ``train_semantic``, ``train_coarse`` and ``train_fine`` are its stages alone.
    ``__default__`` runs them all.

    Returns:
        A mapping from pipeline names to ``Pipeline`` objects.
    """
    pipelines = find_pipelines(raise_errors=True)
    for stage in STAGES:
        pipelines[f"train_{stage}"] = create_stage_pipeline(stage)
    pipelines["__default__"] = sum(
        (pipelines[name] for name in sorted(pipelines) if not name.startswith("train_")),
        Pipeline([]),
    )
    return pipelines
