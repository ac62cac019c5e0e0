"""Causal GPT of Bark's semantic and coarse stages, in Flax NNX.

Pre-LayerNorm blocks, one fused qkv projection, GELU MLP of 4x width, learned
positions, final LayerNorm, ``lm_head`` without bias. The semantic stage can merge its
context: the text block and the semantic-history block are embedded and summed
position by position. The forward pass returns logits at every position (float32).

Dropout is active only when ``rngs`` (with a ``dropout`` stream) is passed, so the
same module serves training and inference and stays a pure function of its state.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from bark_kedro.models.config import FineGPTConfig, GPTConfig
from bark_kedro.models.kv_cache import KVCache

LN_EPS = 1e-5


def _normal(std: float) -> nnx.Initializer:
    return nnx.initializers.normal(stddev=std)


def layer_norm(config: GPTConfig | FineGPTConfig, use_bias: bool, rngs: nnx.Rngs) -> nnx.LayerNorm:
    """LayerNorm as in Bark (eps 1e-5, exact variance, optional bias)."""
    return nnx.LayerNorm(
        config.n_embd,
        epsilon=LN_EPS,
        use_bias=use_bias,
        use_fast_variance=False,
        dtype=jnp.dtype(config.dtype),
        param_dtype=jnp.float32,
        rngs=rngs,
    )


class RowLinear(nnx.Linear):
    """``nnx.Linear`` applied to the input's rows ``(..., features)`` flattened to 2-D.

    Same parameters and result; XLA:CPU compiles the backward pass of a 2-D matmul without
    the slow transposing copies it emits for 3-D inputs (about 30% of a small training step).
    """

    def __call__(self, inputs: jax.Array) -> jax.Array:
        rows = inputs.reshape(-1, inputs.shape[-1])
        return super().__call__(rows).reshape(*inputs.shape[:-1], -1)


def _linear(config, n_in: int, n_out: int, std: float, rngs: nnx.Rngs, bias: bool) -> nnx.Linear:
    return RowLinear(
        n_in,
        n_out,
        use_bias=bias,
        kernel_init=_normal(std),
        dtype=jnp.dtype(config.dtype),
        param_dtype=jnp.float32,
        rngs=rngs,
    )


def manual_attention(q, k, v, mask, kv_layout: str = "bshd", dropout=None, rngs=None):
    """softmax(q k^T / sqrt(d)) v with a boolean mask broadcastable to (b, h, t, s).

    ``q`` is (b, t, h, d); ``k``/``v`` are in ``kv_layout`` ("bshd" or "bhsd").
    """
    scores = jnp.einsum(f"bthd,{kv_layout}->bhts", q, k) / math.sqrt(q.shape[-1])
    scores = jnp.where(mask, scores.astype(jnp.float32), jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    if dropout is not None and rngs is not None:
        probs = dropout(probs, rngs=rngs)
    return jnp.einsum(f"bhts,{kv_layout}->bthd", probs, v)


def cached_attention(q: jax.Array, cache: KVCache, layer: int) -> jax.Array:
    """Attention of new queries ``q`` (b, t, h, d) over ``layer``'s cached keys/values."""
    keys, values = cache.keys[layer], cache.values[layer]  # (b, h, s, d)
    scores = jnp.einsum("bthd,bhsd->bhts", q, keys) / math.sqrt(q.shape[-1])
    mask = cache.query_mask(q.shape[1])  # (t, s), or (b, 1, t, s) with per-row indices
    scores = jnp.where(mask, scores.astype(jnp.float32), jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(values.dtype)
    return jnp.einsum("bhts,bhsd->bthd", probs, values)


class SelfAttention(nnx.Module):
    """Multi-head self-attention with a fused qkv projection (causal or not)."""

    def __init__(self, config, causal: bool, *, rngs: nnx.Rngs):
        c = config.n_embd
        self.n_head, self.causal, self.rate = config.n_head, causal, float(config.dropout)
        self.c_attn = _linear(config, c, 3 * c, 0.02, rngs, config.bias)
        self.c_proj = _linear(config, c, c, 0.02 / math.sqrt(2 * config.n_layer), rngs, config.bias)
        self.attn_dropout = nnx.Dropout(self.rate)
        self.resid_dropout = nnx.Dropout(self.rate)

    def __call__(self, x, *, cache: KVCache | None = None, layer: int = 0, rngs=None):
        b, t, c = x.shape
        qkv = self.c_attn(x).reshape(b, t, 3, self.n_head, c // self.n_head)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        if cache is not None:
            cache = cache.write(layer, k, v)
            y = cached_attention(q, cache, layer)
        elif rngs is not None and self.rate > 0:
            mask = jnp.tril(jnp.ones((t, t), bool)) if self.causal else jnp.ones((t, t), bool)
            y = manual_attention(q, k, v, mask, "bshd", self.attn_dropout, rngs)
        else:
            y = jax.nn.dot_product_attention(q, k, v, is_causal=self.causal)
        y = self.c_proj(y.reshape(b, t, c))
        return self.resid_dropout(y, deterministic=rngs is None, rngs=rngs), cache


class MLP(nnx.Module):
    """Linear -> exact GELU -> Linear (4x width), dropout on the output."""

    def __init__(self, config, *, rngs: nnx.Rngs):
        c = config.n_embd
        self.c_fc = _linear(config, c, 4 * c, 0.02, rngs, config.bias)
        self.c_proj = _linear(
            config, 4 * c, c, 0.02 / math.sqrt(2 * config.n_layer), rngs, config.bias
        )
        self.dropout = nnx.Dropout(float(config.dropout))

    def __call__(self, x, rngs=None):
        y = self.c_proj(jax.nn.gelu(self.c_fc(x), approximate=False))
        return self.dropout(y, deterministic=rngs is None, rngs=rngs)


class Block(nnx.Module):
    """Pre-LayerNorm transformer block."""

    def __init__(self, config, causal: bool, ln_bias: bool, *, rngs: nnx.Rngs):
        self.ln_1 = layer_norm(config, ln_bias, rngs)
        self.attn = SelfAttention(config, causal, rngs=rngs)
        self.ln_2 = layer_norm(config, ln_bias, rngs)
        self.mlp = MLP(config, rngs=rngs)

    def __call__(self, x, *, cache: KVCache | None = None, layer: int = 0, rngs=None):
        y, cache = self.attn(self.ln_1(x), cache=cache, layer=layer, rngs=rngs)
        x = x + y
        return x + self.mlp(self.ln_2(x), rngs=rngs), cache


class GPT(nnx.Module):
    """Bark's causal GPT (semantic and coarse stages)."""

    def __init__(self, config: GPTConfig, *, rngs: nnx.Rngs):
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT needs a GPTConfig, got {type(config).__name__}")
        self.config = config
        dtype = jnp.dtype(config.dtype)
        c = config.n_embd
        self.wte = nnx.Embed(
            config.input_vocab_size,
            c,
            embedding_init=_normal(0.02),
            dtype=dtype,
            param_dtype=jnp.float32,
            rngs=rngs,
        )
        self.wpe = nnx.Embed(
            config.block_size,
            c,
            embedding_init=_normal(0.02),
            dtype=dtype,
            param_dtype=jnp.float32,
            rngs=rngs,
        )
        self.drop = nnx.Dropout(float(config.dropout))
        self.h = nnx.List(
            [
                Block(config, causal=True, ln_bias=config.bias, rngs=rngs)
                for _ in range(config.n_layer)
            ]
        )
        self.ln_f = layer_norm(config, config.bias, rngs)
        self.lm_head = _linear(config, c, config.output_vocab_size, 0.02, rngs, bias=False)

    def embed_tokens(self, idx: jax.Array, merge_context: bool = False) -> jax.Array:
        """Token embeddings (b, t, c); with ``merge_context`` the first two blocks are summed."""
        if idx.ndim != 2:
            raise ValueError(f"idx must be (batch, time), got shape {idx.shape}")
        if not merge_context:
            return self.wte(idx)
        n = self.config.merge_context_len
        if idx.shape[1] < 2 * n + 1:
            raise ValueError(
                f"merge_context needs at least 2*merge_context_len+1={2 * n + 1} tokens, "
                f"got {idx.shape[1]}"
            )
        merged = self.wte(idx[:, :n]) + self.wte(idx[:, n : 2 * n])
        return jnp.concatenate([merged, self.wte(idx[:, 2 * n :])], axis=1)

    def _hidden(self, idx, merge_context, cache, rngs, logits_at=None):
        """Final-LayerNorm outputs (b, t, c) (one position per row with ``logits_at``)."""
        tok = self.embed_tokens(idx, merge_context)
        t = tok.shape[1]
        if cache is None and t > self.config.block_size:
            raise ValueError(
                f"sequence of {t} positions exceeds block_size {self.config.block_size}"
            )
        if cache is not None:
            cache.check_room(t)
        pos = jnp.arange(t) if cache is None else cache.positions(t)
        x = tok + (self.wpe(pos) if pos.ndim == 2 else self.wpe(pos)[None])
        x = self.drop(x, deterministic=rngs is None, rngs=rngs)
        for i, block in enumerate(self.h):
            x, cache = block(x, cache=cache, layer=i, rngs=rngs)
        if logits_at is not None:  # one position per row: skip the head everywhere else
            x = x[jnp.arange(x.shape[0]), logits_at][:, None]
        return self.ln_f(x), cache

    def hidden(
        self, idx: jax.Array, *, merge_context: bool = False, rngs: nnx.Rngs | None = None
    ) -> jax.Array:
        """The head's input (batch, positions, n_embd): final-LayerNorm outputs."""
        return self._hidden(idx, merge_context, None, rngs)[0]

    def head(self, hidden: jax.Array, columns: tuple[int, int] | None = None) -> jax.Array:
        """Logits (float32) of :meth:`hidden` outputs; ``columns=(start, stop)`` computes only
        those vocabulary ids (training needs only the ids its softmax ranges over)."""
        if columns is None:
            return self.lm_head(hidden).astype(jnp.float32)
        dtype = self.lm_head.dtype
        kernel = self.lm_head.kernel[...][:, columns[0] : columns[1]].astype(dtype)
        rows = hidden.reshape(-1, hidden.shape[-1]).astype(dtype)
        return (rows @ kernel).reshape(*hidden.shape[:-1], -1).astype(jnp.float32)

    def __call__(
        self, idx: jax.Array, *, merge_context: bool = False, rngs: nnx.Rngs | None = None
    ):
        """Logits (batch, positions, output_vocab_size) at every position.

        ``rngs`` with a ``dropout`` stream turns dropout on (training).
        """
        return self.head(self.hidden(idx, merge_context=merge_context, rngs=rngs))

    def decode(
        self,
        idx: jax.Array,
        cache: KVCache,
        *,
        merge_context: bool = False,
        logits_at: jax.Array | None = None,
    ) -> tuple[jax.Array, KVCache]:
        """Forward ``idx`` after the positions already in ``cache``; returns (logits, cache).

        Use it for the prompt (any length, ``merge_context`` allowed on an empty cache)
        and then token by token; logits equal those of one full forward. ``logits_at``
        (batch,) picks one position of ``idx`` per row (after merging): the logits are
        then (batch, 1, vocab), and the head runs only there.
        """
        n_positions = idx.shape[1] - (self.config.merge_context_len if merge_context else 0)
        hidden, cache = self._hidden(idx, merge_context, cache, None, logits_at)
        return self.head(hidden), cache.advance(n_positions)

    def init_cache(self, batch_size: int, max_len: int | None = None) -> KVCache:
        """An empty :class:`KVCache` for this model."""
        return KVCache.create(self.config, batch_size, max_len)
