"""Ingest pipeline: recordings and transcripts to validated, resampled utterances."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
