"""The train state: one pytree of step, trainable and frozen parameters and optimizer state.

A model lives as ``nnx.split`` state: a :class:`ModelDef` (graph definition, how to
rebuild the parameter trees) plus flat ``{name: array}`` dicts with dotted names
(``"h.0.attn.c_attn.kernel"``), which the optimizer, the shardings and the Orbax
checkpoints work on. :meth:`ModelDef.merge` rebuilds the ``nnx`` module (inside a
jitted function too). The optimizer is optax AdamW with warmup + cosine decay, gradient
clipping and a weight-decay mask.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct

from bark_kedro.training.config import OptimizerConfig
from bark_kedro.training.model_init import FrozenParam

Params = dict[str, jax.Array]


def _name(path: tuple) -> str:
    keys = [getattr(k, "key", None) for k in path]
    return ".".join(str(k) for k in keys if k is not None)


@dataclass(frozen=True)
class _Flattener:
    names: tuple[str, ...]
    treedef: Any

    @classmethod
    def of(cls, state: nnx.State) -> tuple[_Flattener, Params]:
        leaves, treedef = jax.tree_util.tree_flatten_with_path(state)
        names = tuple(_name(path) for path, _ in leaves)
        if len(set(names)) != len(names):
            raise ValueError(f"parameter names are not unique: {names}")
        return cls(names, treedef), dict(zip(names, (x for _, x in leaves), strict=True))

    def unflatten(self, params: Params) -> nnx.State:
        return jax.tree.unflatten(self.treedef, [params[n] for n in self.names])


@dataclass(frozen=True)
class ModelDef:
    """What is needed, besides the parameter dicts, to rebuild the model."""

    config: Any  # the model config (vocabulary, sizes)
    graphdef: Any
    frozen_tree: _Flattener
    trainable_tree: _Flattener
    rest: nnx.State

    def merge(self, trainable: Params, frozen: Params):
        """The ``nnx`` module with these parameters."""
        return nnx.merge(
            self.graphdef,
            self.frozen_tree.unflatten(frozen),
            self.trainable_tree.unflatten(trainable),
            self.rest,
        )


@struct.dataclass
class TrainState:
    """Everything a training step changes or reads: ``step`` (optimizer updates done),
    ``trainable`` and ``frozen`` parameters, ``opt_state`` (``None`` when only evaluating)."""

    step: jax.Array
    trainable: Params
    frozen: Params
    opt_state: Any = None


def split_model(model) -> tuple[ModelDef, TrainState]:
    """``(model_def, state)`` of an ``nnx`` model (see :class:`FrozenParam`); the state has
    step 0 and no optimizer state (:func:`init_optimizer` adds it)."""
    graphdef, frozen_state, trainable_state, rest = nnx.split(model, FrozenParam, nnx.Param, ...)
    frozen_tree, frozen = _Flattener.of(frozen_state)
    trainable_tree, trainable = _Flattener.of(trainable_state)
    model_def = ModelDef(model.config, graphdef, frozen_tree, trainable_tree, rest)
    return model_def, TrainState(jnp.zeros((), jnp.int32), trainable, frozen)


def merge_model(model_def: ModelDef, state: TrainState):
    """The ``nnx`` module of a state's parameters."""
    return model_def.merge(state.trainable, state.frozen)


# ----------------------------------------------------------------------------- optimizer


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
