"""Shared checks and helpers of the generation loops."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from bark_kedro.generation.sampling import row_keys
from bark_kedro.models.config import GPTConfig
from bark_kedro.models.fine_gpt import FineGPT
from bark_kedro.models.gpt import GPT
from bark_kedro.models.kv_cache import KVCache

KeyLike = int | jax.Array


def per_row(values, n_rows: int, name: str) -> list:
    """``None`` or a sequence of ``n_rows`` optional items, as a list of ``n_rows``."""
    if values is None:
        return [None] * n_rows
    if not isinstance(values, Sequence) or len(values) != n_rows:
        raise ValueError(f"{name} must be None or a sequence of {n_rows} items (one per row)")
    return list(values)


def as_row_keys(key: KeyLike, n_rows: int) -> jax.Array:
    """One PRNG key per row from a seed, a key, or ``(n_rows,)`` keys."""
    if isinstance(key, int | np.integer):
        key = jax.random.key(int(key))
    if not jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.wrap_key_data(key)
    if key.shape == ():
        return row_keys(key, n_rows)
    if key.shape != (n_rows,):
        raise ValueError(f"key must be a seed, one key or {n_rows} keys, got shape {key.shape}")
    return key


def split_model(model: nnx.Module, weights_dtype=None):
    """``(graphdef, state)`` of ``model``; float32 weights cast to ``weights_dtype`` if given."""
    graphdef, state = nnx.split(model)
    if weights_dtype is not None:
        state = jax.tree.map(
            lambda x: x.astype(weights_dtype) if x.dtype == np.float32 else x, state
        )
    return graphdef, state


def check_sequence(name: str, values) -> list:
    """A non-empty list of rows."""
    if isinstance(values, np.ndarray) or not isinstance(values, Sequence) or len(values) == 0:
        raise ValueError(f"{name} must be a non-empty sequence with one item per row")
    return list(values)


def check_gpt(model, stage: str) -> GPTConfig:
    """The config of ``model``, which must be the GPT of ``stage`` ("semantic", "coarse")."""
    if not isinstance(model, GPT) or model.config.stage != stage:
        got = getattr(getattr(model, "config", None), "stage", type(model).__name__)
        raise ValueError(f"expected the {stage} GPT, got {got!r}")
    return model.config


def check_fine(model):
    """The config of ``model``, which must be a FineGPT."""
    if not isinstance(model, FineGPT):
        raise ValueError(f"expected the fine model (FineGPT), got {type(model).__name__}")
    return model.config


N_CACHE_LENGTHS = 4  # a decode loop is compiled for each cache length it grows through
MIN_CACHE_GROWTH = 128


def cache_lengths(first: int, last: int) -> list[int]:
    """The cache lengths a decode grows through, from ``first`` to ``last`` positions.

    Attention reads the whole cache every step, so a short cache while few positions are
    filled saves memory traffic (most with batches); a few evenly spaced lengths, at least
    ``MIN_CACHE_GROWTH`` apart, bound the compilations.
    """
    first = min(first, last)
    n = max(1, min(N_CACHE_LENGTHS, (last - first) // MIN_CACHE_GROWTH))
    return sorted({first + (last - first) * k // n for k in range(1, n + 1)})


def fitting_length(lengths: list[int], needed: int) -> int:
    """The shortest of ``lengths`` holding ``needed`` positions."""
    for length in lengths:
        if length >= needed:
            return length
    raise ValueError(f"no cache length in {lengths} holds {needed} positions")


@partial(jax.jit, static_argnames=("length",))
def grow_cache(cache: KVCache, length: int) -> KVCache:
    """The same cache with room for ``length`` positions (the new slots are empty)."""
    pad = ((0, 0), (0, 0), (0, length - cache.max_len), (0, 0))
    return cache.replace(keys=tuple(jnp.pad(k, pad) for k in cache.keys),
                         values=tuple(jnp.pad(v, pad) for v in cache.values))
