"""Pure loss, train and eval steps of the three stages, jit-compiled once per run.

The model lives as ``nnx.split`` state: a graph definition plus flat ``{name: array}``
dicts of frozen and trainable parameters (see :mod:`bark_kedro.training.state`). Each
stage's softmax runs over the ids its generation loop samples from: semantic ids + EOS
(``[0, semantic_vocab_size]``), the current codebook's ``codebook_size`` ids for coarse
positions, ``[0, codebook_size)`` for the fine model. Steps return sums over loss
tokens, so gradient accumulation and data parallelism weight every token equally.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh

from bark_kedro.models import BarkVocab
from bark_kedro.training.mesh import batch_sharding, replicated
from bark_kedro.training.state import ModelParts

Batch = dict[str, jax.Array]
TOP_K = 10


def stage_logits(model, stage: str, batch: Batch, rngs: nnx.Rngs | None) -> jax.Array:
    """Logits at every target position of ``batch`` (float32)."""
    if stage == "semantic":
        return model(batch["inputs"], merge_context=True, rngs=rngs)
    if stage == "coarse":
        return model(batch["inputs"], rngs=rngs)
    return model(batch["codebook"][0], batch["inputs"], rngs=rngs)


def restrict_logits(
    logits: jax.Array, batch: Batch, stage: str, vocab: BarkVocab
) -> tuple[jax.Array, jax.Array]:
    """``(logits, targets)`` over the ids that stage may emit at each position."""
    targets = batch["targets"]
    if stage == "semantic":
        return logits[..., : vocab.semantic_vocab_size + 1], targets
    size = vocab.codebook_size
    if stage == "fine":
        return logits[..., :size], targets
    start, n_books = vocab.semantic_vocab_size, vocab.n_coarse_codebooks
    codebook = batch["codebook"]
    picked = logits[..., start : start + size]
    for k in range(1, n_books):  # a select per codebook: no gather/scatter in the backward
        book = logits[..., start + k * size : start + (k + 1) * size]
        picked = jnp.where((codebook == k)[..., None], book, picked)
    local = jnp.clip(targets - start - codebook * size, 0, size - 1)
    return picked, local


def token_stats(logits: jax.Array, targets: jax.Array, mask: jax.Array) -> dict[str, jax.Array]:
    """Sums over masked tokens: cross-entropy, top-1 and top-10 hits, token count."""
    targets = jnp.clip(targets, 0, logits.shape[-1] - 1)
    target_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)
    nll = jax.nn.logsumexp(logits, axis=-1) - target_logit[..., 0]
    rank = jnp.sum(logits > target_logit, axis=-1)
    weight = mask.astype(jnp.float32)
    return {
        "loss_sum": jnp.sum(nll * weight),
        "top1": jnp.sum((rank < 1) * weight),
        "top10": jnp.sum((rank < TOP_K) * weight),
        "n_tokens": jnp.sum(weight),
    }


STAT_KEYS = ("loss_sum", "top1", "top10", "n_tokens")


def make_stats_fn(parts: ModelParts, stage: str, vocab: BarkVocab, mesh: Mesh, dropout: bool):
    """``(trainable, frozen, batch, key) -> (loss_sum, stats)``: the differentiable core.

    Parameters are gathered to every device where used (FSDP: all-gather forward,
    reduce-scatter of the gradients backward); the batch stays split by rows.
    """
    rep = replicated(mesh)

    def stats_fn(trainable, frozen, batch, key):
        gather = lambda tree: jax.lax.with_sharding_constraint(  # noqa: E731
            tree, jax.tree.map(lambda _: rep, tree)
        )
        model = parts.merge(gather(frozen), gather(trainable))
        rngs = nnx.Rngs(dropout=key) if dropout and key is not None else None
        logits = stage_logits(model, stage, batch, rngs)
        logits, targets = restrict_logits(logits, batch, stage, vocab)
        stats = token_stats(logits, targets, batch["loss_mask"])
        return stats["loss_sum"], stats

    return stats_fn


def make_eval_step(
    parts: ModelParts, stage: str, vocab: BarkVocab, mesh: Mesh, param_shardings: tuple
) -> Callable:
    """Jitted ``(frozen, trainable, batch) -> stats sums`` (no dropout)."""
    stats_fn = make_stats_fn(parts, stage, vocab, mesh, dropout=False)
    rep = replicated(mesh)
    return jax.jit(
        lambda frozen, trainable, batch: stats_fn(trainable, frozen, batch, None)[1],
        in_shardings=(*param_shardings, batch_sharding(mesh)),
        out_shardings={k: rep for k in STAT_KEYS},
    )


@dataclass(frozen=True)
class TrainSteps:
    """Jitted training steps of one run; see :func:`make_train_steps`."""

    train: Callable  # (frozen, trainable, opt_state, batch, key) -> (trainable, opt_state, metrics)
    accumulate: Callable  # (frozen, trainable, grads_sum, stats_sum, batch, key) -> (grads, stats)
    apply: Callable  # (trainable, opt_state, grads_sum, stats_sum) -> (trainable, opt_state, metrics)
    zeros: Callable  # (trainable) -> (zero grads, zero stats) for accumulation


def make_train_steps(
    parts: ModelParts,
    stage: str,
    vocab: BarkVocab,
    optimizer: optax.GradientTransformation,
    mesh: Mesh,
    param_shardings: tuple,
    opt_shardings,
    dropout: bool,
) -> TrainSteps:
    """The jitted steps; ``param_shardings`` is ``(frozen, trainable)``. Parameters,
    optimizer state and gradient sums keep their shardings; their buffers are donated."""
    frozen_sh, trainable_sh = param_shardings
    rep, rows = replicated(mesh), batch_sharding(mesh)
    grad_fn = jax.value_and_grad(make_stats_fn(parts, stage, vocab, mesh, dropout), has_aux=True)

    def accumulate(frozen, trainable, grads_sum, stats_sum, batch, key):
        (_, stats), grads = grad_fn(trainable, frozen, batch, key)
        grads_sum = jax.tree.map(jnp.add, grads_sum, grads)
        return grads_sum, jax.tree.map(jnp.add, stats_sum, stats)

    def apply(trainable, opt_state, grads_sum, stats_sum):
        n = jnp.maximum(stats_sum["n_tokens"], 1.0)
        grads = jax.tree.map(lambda g: g / n, grads_sum)
        updates, opt_state = optimizer.update(grads, opt_state, trainable)
        metrics = {
            "loss": stats_sum["loss_sum"] / n,
            "grad_norm": optax.global_norm(grads),
            "n_tokens": stats_sum["n_tokens"],
        }
        return optax.apply_updates(trainable, updates), opt_state, metrics

    def train(frozen, trainable, opt_state, batch, key):
        (_, stats), grads = grad_fn(trainable, frozen, batch, key)
        return apply(trainable, opt_state, grads, stats)

    def zeros(trainable):
        return jax.tree.map(jnp.zeros_like, trainable), {k: jnp.zeros(()) for k in STAT_KEYS}

    stat_sh = {k: rep for k in STAT_KEYS}
    metric_sh = {k: rep for k in ("loss", "grad_norm", "n_tokens")}
    return TrainSteps(
        train=jax.jit(
            train,
            in_shardings=(frozen_sh, trainable_sh, opt_shardings, rows, rep),
            out_shardings=(trainable_sh, opt_shardings, metric_sh),
            donate_argnums=(1, 2),
        ),
        accumulate=jax.jit(
            accumulate,
            in_shardings=(frozen_sh, trainable_sh, trainable_sh, stat_sh, rows, rep),
            out_shardings=(trainable_sh, stat_sh),
            donate_argnums=(2, 3),
        ),
        apply=jax.jit(
            apply,
            in_shardings=(trainable_sh, opt_shardings, trainable_sh, stat_sh),
            out_shardings=(trainable_sh, opt_shardings, metric_sh),
            donate_argnums=(0, 1),
        ),
        zeros=jax.jit(zeros, in_shardings=(trainable_sh,), out_shardings=(trainable_sh, stat_sh)),
    )
