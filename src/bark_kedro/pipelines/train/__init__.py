"""Training pipelines: one template instantiated for the semantic, coarse and fine stages."""

from .pipeline import STAGES, create_pipeline, create_stage_pipeline

__all__ = ["STAGES", "create_pipeline", "create_stage_pipeline"]
