"""optax AdamW with warmup + cosine decay, gradient clipping and a weight-decay mask."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax
import optax

from bark_kedro.training.config import OptimizerConfig


def learning_rate_schedule(config: OptimizerConfig, total_steps: int) -> optax.Schedule:
    """0 -> ``learning_rate`` linearly over ``warmup_steps``, then cosine down to the minimum
    at ``total_steps``."""
    warmup = min(config.warmup_steps, total_steps)
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=config.learning_rate,
        warmup_steps=warmup,
        decay_steps=max(total_steps, warmup + 1),
        end_value=config.end_learning_rate,
    )


def decay_mask(params: Mapping[str, jax.Array]) -> dict[str, bool]:
    """Weight decay on arrays of rank >= 2 (kernels, embeddings), not on norms or biases."""
    return {name: value.ndim >= 2 for name, value in params.items()}


def make_optimizer(
    config: OptimizerConfig, total_steps: int
) -> tuple[optax.GradientTransformation, Callable]:
    """``(optimizer, schedule)``: global-norm clipping (if on), then AdamW.

    The optimizer works on a flat ``{name: array}`` dict of trainable parameters.
    """
    schedule = learning_rate_schedule(config, total_steps)
    adamw = optax.adamw(
        schedule,
        b1=config.b1,
        b2=config.b2,
        eps=config.eps,
        weight_decay=config.weight_decay,
        mask=decay_mask,
    )
    if config.grad_clip_norm > 0:
        return optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), adamw), schedule
    return adamw, schedule
