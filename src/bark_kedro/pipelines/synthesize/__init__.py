"""Synthesize pipeline: a text (and an optional voice prompt) to a WAV with the trained stages."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
