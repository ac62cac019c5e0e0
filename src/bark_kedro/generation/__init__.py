"""Bark's three generation loops in JAX, voice prompts and text-to-waveform synthesis.

Kedro-agnostic: plain functions over Flax models, numpy arrays and dataclass configs.
"""

from bark_kedro.generation.coarse import generate_coarse
from bark_kedro.generation.config import GenerationConfig
from bark_kedro.generation.fine import generate_fine
from bark_kedro.generation.sampling import filter_logits, sample_next
from bark_kedro.generation.semantic import generate_semantic

__all__ = [
    "GenerationConfig",
    "filter_logits",
    "generate_coarse",
    "generate_fine",
    "generate_semantic",
    "sample_next",
]
