"""Evaluate pipeline: held-out teacher-forced metrics per stage and end-to-end synthesis."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
