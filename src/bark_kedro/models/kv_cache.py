"""Fixed-shape key/value cache for incremental decoding of the causal GPT.

Preallocated buffers plus a fill index, updated in place (``lax.dynamic_update_slice``,
or a scatter when every row has its own index); every shape is static, so a
``jax.lax.while_loop`` / ``scan`` generation loop can carry the cache (it is a pytree)
and the decode step compiles once.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from bark_kedro.models.config import GPTConfig


@struct.dataclass
class KVCache:
    """Keys/values: one ``(batch, n_head, max_len, head_dim)`` buffer per layer.

    Separate buffers per layer (not one stacked array), so that attention reads a layer's
    buffer where it lies: slicing a layer out of a stacked cache makes XLA:CPU copy it at
    every decode step.

    ``index`` (int32) is the number of positions already written: a scalar shared by all
    rows, or one per row ``(batch,)`` (rows whose prompts differ in length); attention
    of a new query at position ``index + i`` sees keys at positions ``<= index + i``.
    """

    keys: tuple[jax.Array, ...]
    values: tuple[jax.Array, ...]
    index: jax.Array

    @classmethod
    def create(
        cls,
        config: GPTConfig,
        batch_size: int,
        max_len: int | None = None,
        dtype: str | jnp.dtype | None = None,
        per_row: bool = False,
    ) -> KVCache:
        """An empty cache for ``config``; ``max_len`` defaults to the block size.

        ``per_row`` gives every row its own fill index (see :meth:`with_index`).
        """
        max_len = config.block_size if max_len is None else max_len
        if not 1 <= max_len <= config.block_size:
            raise ValueError(
                f"max_len must be in [1, block_size={config.block_size}], got {max_len}"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        shape = (batch_size, config.n_head, max_len, config.head_dim)
        dtype = jnp.dtype(config.dtype if dtype is None else dtype)
        index = jnp.zeros((batch_size,) if per_row else (), jnp.int32)
        # separate buffers, so that a jitted loop may donate each
        keys = tuple(jnp.zeros(shape, dtype) for _ in range(config.n_layer))
        values = tuple(jnp.zeros(shape, dtype) for _ in range(config.n_layer))
        return cls(keys=keys, values=values, index=index)

    @property
    def max_len(self) -> int:
        return self.keys[0].shape[2]

    @property
    def batch_size(self) -> int:
        return self.keys[0].shape[0]

    def check_room(self, n_new: int) -> None:
        """Raise if ``n_new`` positions do not fit (only when the index is concrete)."""
        try:
            index = int(jnp.max(self.index))
        except jax.errors.ConcretizationTypeError:
            return  # traced inside jit: the caller's loop bounds are responsible
        if index + n_new > self.max_len:
            raise ValueError(
                f"KV cache overflow: {index} positions filled + {n_new} new > max_len "
                f"{self.max_len}"
            )

    def write(self, layer: int, k: jax.Array, v: jax.Array) -> KVCache:
        """Store new keys/values ``(batch, T, n_head, head_dim)`` of ``layer`` at ``index``."""
        keys, values = self.keys[layer], self.values[layer]
        if self.index.ndim == 1:  # per-row positions: scatter (batch, T) slots in place
            rows = jnp.arange(k.shape[0])[:, None]
            pos = self.index[:, None] + jnp.arange(k.shape[1])[None, :]
            keys = keys.at[rows, :, pos].set(k.astype(keys.dtype))
            values = values.at[rows, :, pos].set(v.astype(values.dtype))
        else:
            start = (0, 0, self.index, 0)
            keys = jax.lax.dynamic_update_slice(
                keys, jnp.swapaxes(k, 1, 2).astype(keys.dtype), start)
            values = jax.lax.dynamic_update_slice(
                values, jnp.swapaxes(v, 1, 2).astype(values.dtype), start)
        return self.replace(keys=_put(self.keys, layer, keys), values=_put(self.values, layer, values))

    def positions(self, n_new: int) -> jax.Array:
        """Positions of ``n_new`` new tokens: ``(n_new,)``, or ``(batch, n_new)`` per row."""
        return self.index[..., None] + jnp.arange(n_new)

    def query_mask(self, n_queries: int) -> jax.Array:
        """Key ``j`` visible to new query ``i``: ``(n_queries, max_len)`` booleans, or
        ``(batch, 1, n_queries, max_len)`` with a per-row index."""
        query_pos = self.positions(n_queries)[..., None]
        visible = jnp.arange(self.max_len) <= query_pos
        return visible[:, None] if self.index.ndim == 1 else visible

    def with_index(self, index: jax.Array | int) -> KVCache:
        """The same buffers with another fill index (scalar, or ``(batch,)`` per row): after
        a right-padded prompt, set each row's index to its true length so that the next
        tokens overwrite the padding (positions at or after the index are never attended)."""
        index = jnp.asarray(index, jnp.int32)
        if index.ndim > 1 or (index.ndim == 1 and index.shape[0] != self.batch_size):
            raise ValueError(f"index must be a scalar or ({self.batch_size},), got {index.shape}")
        return self.replace(index=index)

    def advance(self, n: int) -> KVCache:
        """The cache after ``n`` new positions were written to every layer."""
        return self.replace(index=self.index + n)


def _put(buffers: tuple[jax.Array, ...], layer: int, buffer: jax.Array) -> tuple[jax.Array, ...]:
    return buffers[:layer] + (buffer,) + buffers[layer + 1:]
