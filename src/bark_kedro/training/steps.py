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


def stage_outputs(
    model, stage: str, batch: Batch, vocab: BarkVocab, rngs: nnx.Rngs | None
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(logits, targets, loss_mask)`` over the ids that stage may emit at each position.

    Only the logits the loss uses are computed: the semantic model's positions after its
    merged text+history context (which never carry loss) and its ids + EOS columns; the
    coarse model's codebook columns, each position keeping its own codebook's (targets
    become ids within it); the fine model's codebook ids (never its pad code).
    """
    targets, mask = batch["targets"], batch["loss_mask"]
    size = vocab.codebook_size
    if stage == "fine":
        return model(batch["codebook"][0], batch["inputs"], rngs=rngs)[..., :size], targets, mask
    if stage == "semantic":
        n = model.config.merge_context_len
        hidden = model.hidden(batch["inputs"], merge_context=True, rngs=rngs)[:, n:]
        logits = model.head(hidden, (0, vocab.semantic_vocab_size + 1))
        return logits, targets[:, n:], mask[:, n:]
    start, n_books = vocab.semantic_vocab_size, vocab.n_coarse_codebooks
    books = model.head(model.hidden(batch["inputs"], rngs=rngs), (start, start + n_books * size))
    codebook = batch["codebook"]
    picked = books[..., :size]
    for k in range(1, n_books):  # a select per codebook: no gather/scatter in the backward
        picked = jnp.where((codebook == k)[..., None], books[..., k * size : (k + 1) * size], picked)
    local = jnp.clip(targets - start - codebook * size, 0, size - 1)
    return picked, local, mask


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
    """``(trainable, frozen, batch, key[, mean]) -> (loss, stats)``: the differentiable
    core; the loss is the sum over loss tokens, or with ``mean=True`` the mean (the token
    count does not depend on the parameters, so the gradients come out already averaged).

    Parameters are gathered to every device where used (FSDP: all-gather forward,
    reduce-scatter of the gradients backward); the batch stays split by rows.
    """
    rep = replicated(mesh)

    def stats_fn(trainable, frozen, batch, key, mean=False):
        gather = lambda tree: jax.lax.with_sharding_constraint(  # noqa: E731
            tree, jax.tree.map(lambda _: rep, tree)
        )
        model = parts.merge(gather(frozen), gather(trainable))
        rngs = nnx.Rngs(dropout=key) if dropout and key is not None else None
        stats = token_stats(*stage_outputs(model, stage, batch, vocab, rngs))
        if mean:
            return stats["loss_sum"] / jnp.maximum(stats["n_tokens"], 1.0), stats
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

    def update(trainable, opt_state, grads, stats):  # grads: of the mean loss per token
        updates, opt_state = optimizer.update(grads, opt_state, trainable)
        metrics = {
            "loss": stats["loss_sum"] / jnp.maximum(stats["n_tokens"], 1.0),
            "grad_norm": optax.global_norm(grads),
            "n_tokens": stats["n_tokens"],
        }
        return optax.apply_updates(trainable, updates), opt_state, metrics

    def apply(trainable, opt_state, grads_sum, stats_sum):
        n = jnp.maximum(stats_sum["n_tokens"], 1.0)
        return update(trainable, opt_state, jax.tree.map(lambda g: g / n, grads_sum), stats_sum)

    def train(frozen, trainable, opt_state, batch, key):
        # the mean loss is differentiated: no pass dividing the gradients afterwards
        (_, stats), grads = grad_fn(trainable, frozen, batch, key, True)
        return update(trainable, opt_state, grads, stats)

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
