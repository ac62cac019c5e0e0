"""Tokenize pipeline: utterances to text, semantic and codec token tables."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
