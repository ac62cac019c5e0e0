"""Pure loss, train and eval steps of the three stages (jit-compiled by the loop).

Each stage's softmax runs over the ids its generation loop samples from: semantic ids +
EOS (``[0, semantic_vocab_size]``), the current codebook's ``codebook_size`` ids for
coarse positions, ``[0, codebook_size)`` for the fine model. Steps return sums over loss
tokens, so gradient accumulation and data parallelism weight every token equally.

Every function takes a :class:`~bark_kedro.training.state.TrainState` and a batch; the
model definition, stage, optimizer and mesh come as keyword arguments, which the loop
binds before ``jax.jit`` (see :func:`bark_kedro.training.loop.compile_steps`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh

from bark_kedro.models.lora import draw_adapter_dropout, has_adapter_dropout
from bark_kedro.training.batching import Batch
from bark_kedro.training.mesh import replicated
from bark_kedro.training.state import ModelDef, Params, TrainState

Stats = dict[str, jax.Array]
TOP_K = 10
STAT_KEYS = ("loss_sum", "top1", "top10", "n_tokens")
METRIC_KEYS = ("loss", "grad_norm", "n_tokens")


def stage_outputs(
    model, stage: str, batch: Batch, rngs: nnx.Rngs | None
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(logits, targets, loss_mask)`` over the ids that stage may emit at each position.

    Only the logits the loss uses are computed: the semantic model's positions after its
    merged text+history context (which never carry loss) and its ids + EOS columns; the
    coarse model's codebook columns, each position keeping its own codebook's (targets
    become ids within it); the fine model's codebook ids (never its pad code).
    """
    vocab = model.config.vocab
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


def token_stats(logits: jax.Array, targets: jax.Array, mask: jax.Array) -> Stats:
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


def loss_fn(
    trainable: Params, frozen: Params, batch: Batch, key: jax.Array | None, *,
    model_def: ModelDef, stage: str, mesh: Mesh, mean: bool = False,
) -> tuple[jax.Array, Stats]:
    """``(loss, stats)``, differentiable in ``trainable``: the sum of the loss over its
    tokens, or with ``mean=True`` the mean (the token count does not depend on the
    parameters, so the gradients come out already averaged). ``key``: dropout, or ``None``.

    Parameters are gathered to every device where used (FSDP: all-gather forward,
    reduce-scatter of the gradients backward); the batch stays split by rows.
    """
    rep = replicated(mesh)
    gather = lambda tree: jax.lax.with_sharding_constraint(  # noqa: E731
        tree, jax.tree.map(lambda _: rep, tree)
    )
    model = model_def.merge(gather(trainable), gather(frozen))
    dropout = key is not None and float(model_def.config.dropout) > 0
    rngs = nnx.Rngs(dropout=key) if dropout else None
    if key is not None and has_adapter_dropout(model):
        draw_adapter_dropout(model, jax.random.fold_in(key, 1))
    stats = token_stats(*stage_outputs(model, stage, batch, rngs))
    if mean:
        return stats["loss_sum"] / jnp.maximum(stats["n_tokens"], 1.0), stats
    return stats["loss_sum"], stats


def apply_gradients(
    state: TrainState, grads: Params, stats: Stats, *, optimizer: optax.GradientTransformation
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimizer update from the gradients of the mean loss per token."""
    updates, opt_state = optimizer.update(grads, state.opt_state, state.trainable)
    metrics = {
        "loss": stats["loss_sum"] / jnp.maximum(stats["n_tokens"], 1.0),
        "grad_norm": optax.global_norm(grads),
        "n_tokens": stats["n_tokens"],
    }
    state = state.replace(
        step=state.step + 1,
        trainable=optax.apply_updates(state.trainable, updates),
        opt_state=opt_state,
    )
    return state, metrics


def train_step(
    state: TrainState, batch: Batch, key: jax.Array, *,
    model_def: ModelDef, stage: str, mesh: Mesh, optimizer: optax.GradientTransformation,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimizer update on one batch: ``(new state, {loss, grad_norm, n_tokens})``."""
    # the mean loss is differentiated: no pass dividing the gradients afterwards
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (_, stats), grads = grad_fn(state.trainable, state.frozen, batch, key, model_def=model_def,
                                stage=stage, mesh=mesh, mean=True)
    return apply_gradients(state, grads, stats, optimizer=optimizer)


def zero_gradients(state: TrainState) -> tuple[Params, Stats]:
    """Zero gradient and stats sums to accumulate micro-batches into."""
    return jax.tree.map(jnp.zeros_like, state.trainable), {k: jnp.zeros(()) for k in STAT_KEYS}


def accumulate_gradients(
    state: TrainState, grads_sum: Params, stats_sum: Stats, batch: Batch, key: jax.Array, *,
    model_def: ModelDef, stage: str, mesh: Mesh,
) -> tuple[Params, Stats]:
    """Add one micro-batch's gradient and stats sums (of the summed loss) to the running ones."""
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (_, stats), grads = grad_fn(state.trainable, state.frozen, batch, key, model_def=model_def,
                                stage=stage, mesh=mesh)
    return jax.tree.map(jnp.add, grads_sum, grads), jax.tree.map(jnp.add, stats_sum, stats)


def apply_accumulated(
    state: TrainState, grads_sum: Params, stats_sum: Stats, *,
    optimizer: optax.GradientTransformation,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """The optimizer update from accumulated sums: gradients divided by the token count, so
    every token of every micro-batch weighs the same."""
    n = jnp.maximum(stats_sum["n_tokens"], 1.0)
    grads = jax.tree.map(lambda g: g / n, grads_sum)
    return apply_gradients(state, grads, stats_sum, optimizer=optimizer)


def eval_step(
    state: TrainState, batch: Batch, *, model_def: ModelDef, stage: str, mesh: Mesh
) -> Stats:
    """Stats sums of one batch, without dropout."""
    return loss_fn(state.trainable, state.frozen, batch, None, model_def=model_def,
                   stage=stage, mesh=mesh)[1]
