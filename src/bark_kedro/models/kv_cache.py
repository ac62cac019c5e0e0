"""Fixed-shape key/value cache for incremental decoding of the causal GPT.

Preallocated buffers plus a fill index, updated with ``lax.dynamic_update_slice``;
every shape is static, so a ``jax.lax.while_loop`` / ``scan`` generation loop can carry
the cache (it is a pytree) and the decode step compiles once.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from bark_kedro.models.config import GPTConfig


@struct.dataclass
class KVCache:
    """Keys/values of every layer, ``(n_layer, batch, n_head, max_len, head_dim)``.

    ``index`` (int32 scalar) is the number of positions already written; attention of
    a new query at position ``index + i`` sees keys at positions ``<= index + i``.
    """

    keys: jax.Array
    values: jax.Array
    index: jax.Array

    @classmethod
    def create(
        cls,
        config: GPTConfig,
        batch_size: int,
        max_len: int | None = None,
        dtype: str | jnp.dtype | None = None,
    ) -> KVCache:
        """An empty cache for ``config``; ``max_len`` defaults to the block size."""
        max_len = config.block_size if max_len is None else max_len
        if not 1 <= max_len <= config.block_size:
            raise ValueError(
                f"max_len must be in [1, block_size={config.block_size}], got {max_len}"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        shape = (config.n_layer, batch_size, config.n_head, max_len, config.head_dim)
        dtype = jnp.dtype(config.dtype if dtype is None else dtype)
        zeros = jnp.zeros(shape, dtype)
        return cls(keys=zeros, values=zeros, index=jnp.zeros((), jnp.int32))

    @property
    def max_len(self) -> int:
        return self.keys.shape[3]

    def check_room(self, n_new: int) -> None:
        """Raise if ``n_new`` positions do not fit (only when the index is concrete)."""
        try:
            index = int(self.index)
        except jax.errors.ConcretizationTypeError:
            return  # traced inside jit: the caller's loop bounds are responsible
        if index + n_new > self.max_len:
            raise ValueError(
                f"KV cache overflow: {index} positions filled + {n_new} new > max_len "
                f"{self.max_len}"
            )

    def write(self, layer: int, k: jax.Array, v: jax.Array) -> KVCache:
        """Store new keys/values ``(batch, T, n_head, head_dim)`` of ``layer`` at ``index``."""
        k = jnp.swapaxes(k, 1, 2).astype(self.keys.dtype)[None]
        v = jnp.swapaxes(v, 1, 2).astype(self.values.dtype)[None]
        start = (layer, 0, 0, self.index, 0)
        return self.replace(
            keys=jax.lax.dynamic_update_slice(self.keys, k, start),
            values=jax.lax.dynamic_update_slice(self.values, v, start),
        )

    def query_mask(self, n_queries: int) -> jax.Array:
        """``(n_queries, max_len)`` booleans: key ``j`` visible to new query ``i``."""
        query_pos = self.index + jnp.arange(n_queries)[:, None]
        return jnp.arange(self.max_len)[None, :] <= query_pos

    def advance(self, n: int) -> KVCache:
        """The cache after ``n`` new positions were written to every layer."""
        return self.replace(index=self.index + n)
