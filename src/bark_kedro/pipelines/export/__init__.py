"""Export pipeline: fine-tuned Bark models against their base models, then the files the
original Bark plays (suno ``.pt`` checkpoints and a voice prompt ``.npz``)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
