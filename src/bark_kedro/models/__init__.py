"""Bark's three transformers in Flax NNX, their configs and checkpoint formats."""

from bark_kedro.models.config import (
    PRESETS,
    FineGPTConfig,
    GPTConfig,
    ModelConfig,
    coarse_config,
    config_from_dict,
    fine_config,
    semantic_config,
)
from bark_kedro.models.convert import abstract_model
from bark_kedro.models.fine_gpt import FineGPT
from bark_kedro.models.gpt import GPT
from bark_kedro.models.kv_cache import KVCache
from bark_kedro.models.tokens import BARK_VOCAB, BarkVocab

# Checkpoint formats import torch/orbax: loaded on first use.
_LAZY = {
    "load_config": "orbax_io",
    "load_extra": "orbax_io",
    "load_metadata": "orbax_io",
    "load_model": "orbax_io",
    "save_model": "orbax_io",
    "export_suno_checkpoint": "suno_format",
    "load_suno_checkpoint": "suno_format",
    "load_transformers_bark": "transformers_format",
    "load_transformers_model": "transformers_format",
}

__all__ = [
    "BARK_VOCAB",
    "PRESETS",
    "BarkVocab",
    "FineGPT",
    "FineGPTConfig",
    "GPT",
    "GPTConfig",
    "KVCache",
    "ModelConfig",
    "abstract_model",
    "build_model",
    "coarse_config",
    "config_from_dict",
    "export_suno_checkpoint",
    "fine_config",
    "load_config",
    "load_extra",
    "load_metadata",
    "load_model",
    "load_suno_checkpoint",
    "load_transformers_bark",
    "load_transformers_model",
    "save_model",
    "semantic_config",
]


def build_model(config: ModelConfig, seed: int = 0) -> GPT | FineGPT:
    """A randomly initialized model for ``config`` (GPT or FineGPT by config type)."""
    from flax import nnx

    cls = FineGPT if isinstance(config, FineGPTConfig) else GPT
    return cls(config, rngs=nnx.Rngs(seed))


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
