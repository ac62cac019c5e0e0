"""A model as pure state: graph definition + flat ``{name: array}`` parameter dicts.

Flat dicts with dotted names (``"h.0.attn.c_attn.kernel"``) are what the optimizer,
the shardings and the Orbax checkpoints work on; :meth:`ModelParts.merge` rebuilds the
``nnx`` module (inside a jitted function too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
from flax import nnx

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
class ModelParts:
    """What is needed, besides the parameter dicts, to rebuild the model."""

    config: Any  # the model config (vocabulary, sizes)
    graphdef: Any
    frozen: _Flattener
    trainable: _Flattener
    rest: nnx.State

    def merge(self, frozen: Params, trainable: Params):
        """The ``nnx`` module with these parameters."""
        return nnx.merge(
            self.graphdef,
            self.frozen.unflatten(frozen),
            self.trainable.unflatten(trainable),
            self.rest,
        )


def split_model(model) -> tuple[ModelParts, Params, Params]:
    """``(parts, frozen, trainable)`` of an ``nnx`` model (see :class:`FrozenParam`)."""
    graphdef, frozen_state, trainable_state, rest = nnx.split(model, FrozenParam, nnx.Param, ...)
    frozen_flat, frozen = _Flattener.of(frozen_state)
    trainable_flat, trainable = _Flattener.of(trainable_state)
    parts = ModelParts(model.config, graphdef, frozen_flat, trainable_flat, rest)
    return parts, frozen, trainable
