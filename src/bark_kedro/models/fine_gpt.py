"""Bark's non-causal fine model in Flax NNX.

One input embedding table per codebook (stored stacked, ``(n_codes_total, vocab,
n_embd)``); to predict codebook ``k`` the embeddings of codebooks ``0..k`` are summed.
Non-causal pre-LayerNorm blocks whose LayerNorms always carry a bias. The output head
of codebook ``k`` is the transposed input embedding ``k`` (weights tied, as in Bark).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from bark_kedro.models.config import FineGPTConfig
from bark_kedro.models.gpt import Block, layer_norm


class FineGPT(nnx.Module):
    """Non-causal GPT predicting codebook ``k`` from codebooks ``0..k``."""

    def __init__(self, config: FineGPTConfig, *, rngs: nnx.Rngs):
        if not isinstance(config, FineGPTConfig):
            raise TypeError(f"FineGPT needs a FineGPTConfig, got {type(config).__name__}")
        self.config = config
        c = config.n_embd
        shape = (config.n_codes_total, config.input_vocab_size, c)
        self.wtes = nnx.Param(nnx.initializers.normal(0.02)(rngs.params(), shape, jnp.float32))
        self.wpe = nnx.Embed(
            config.block_size,
            c,
            embedding_init=nnx.initializers.normal(0.02),
            dtype=jnp.dtype(config.dtype),
            param_dtype=jnp.float32,
            rngs=rngs,
        )
        self.drop = nnx.Dropout(float(config.dropout))
        self.h = nnx.List(
            [Block(config, causal=False, ln_bias=True, rngs=rngs) for _ in range(config.n_layer)]
        )
        self.ln_f = layer_norm(config, True, rngs)

    def _check_codebook(self, codebook_idx) -> None:
        if isinstance(codebook_idx, jax.core.Tracer):
            return
        k, cfg = int(codebook_idx), self.config
        if not cfg.n_codes_given <= k < cfg.n_codes_total:
            raise ValueError(
                f"codebook_idx must be in [{cfg.n_codes_given}, {cfg.n_codes_total}), got {k}"
            )

    def __call__(
        self, codebook_idx: int | jax.Array, idx: jax.Array, *, rngs: nnx.Rngs | None = None
    ) -> jax.Array:
        """Logits (batch, time, vocab) of codebook ``codebook_idx`` at every position.

        ``idx`` is (batch, time, n_codes_total); codebooks after ``codebook_idx`` are
        ignored. ``codebook_idx`` may be a traced scalar (one compiled step for all
        codebooks). ``rngs`` with a ``dropout`` stream turns dropout on.
        """
        cfg = self.config
        if idx.ndim != 3 or idx.shape[2] != cfg.n_codes_total:
            raise ValueError(
                f"idx must be (batch, time, {cfg.n_codes_total}), got shape {idx.shape}"
            )
        t = idx.shape[1]
        if t > cfg.block_size:
            raise ValueError(f"sequence of {t} positions exceeds block_size {cfg.block_size}")
        self._check_codebook(codebook_idx)
        dtype = jnp.dtype(cfg.dtype)
        tables = self.wtes[...]
        codebooks = jnp.arange(cfg.n_codes_total)
        emb = tables[codebooks, idx].astype(dtype)  # (b, t, n_codes_total, c)
        used = (codebooks <= codebook_idx).astype(dtype)
        x = jnp.einsum("btnc,n->btc", emb, used) + self.wpe(jnp.arange(t))[None]
        x = self.drop(x, deterministic=rngs is None, rngs=rngs)
        for block in self.h:
            x, _ = block(x, rngs=rngs)
        x = self.ln_f(x)
        head = jax.lax.dynamic_index_in_dim(tables, codebook_idx, axis=0, keepdims=False)
        return jnp.einsum("btc,vc->btv", x, head.astype(dtype)).astype(jnp.float32)
