"""Low-rank adapters (LoRA) on the attention and MLP projections of the three stage models.

An adapted projection computes ``x @ W + b + (alpha / rank) * dropout(x) @ A @ B`` with
``A`` (in, rank) drawn from a seed and ``B`` (rank, out) zero, so an adapted model starts
equal to its base. The adapters are ``nnx.LoRAParam`` variables (a kind of ``nnx.Param``)
next to the base kernel, whose path does not change: the base part of an adapted model's
state is the base model's state. :func:`split_trainable` separates what an optimizer
updates (adapters, optionally LayerNorms and heads) from the frozen base;
:func:`merge_adapters` folds the adapters into the kernels and returns a plain model that
exports to every checkpoint format unchanged. :func:`base_digest` fingerprints the base
weights so adapters are never applied to another base (:func:`check_base`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from bark_kedro.models.fine_gpt import FineGPT
from bark_kedro.models.gpt import GPT, RowLinear

Model = GPT | FineGPT

# Projection names in models/gpt.py; "attn.c_proj" / "mlp.c_proj" pick one of the two c_proj.
TARGET_MODULES = ("c_attn", "c_proj", "c_fc", "attn.c_proj", "mlp.c_proj")


@dataclass(frozen=True)
class LoRAConfig:
    """Adapters: ``rank``, scale ``alpha / rank``, ``dropout`` on the adapter input, which
    projections (``target_modules``), and what else trains: ``train_layer_norms`` (every
    LayerNorm) and ``train_heads`` (``lm_head``; the fine model's heads are tied to its
    embedding tables ``wtes``, so those). ``seed`` draws the ``A`` matrices."""

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("c_attn", "c_proj", "c_fc")
    train_layer_norms: bool = False
    train_heads: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.target_modules, str) or not isinstance(self.target_modules, Sequence):
            raise ValueError(
                f"LoRAConfig.target_modules must be a list of names, got {self.target_modules!r}"
            )
        object.__setattr__(self, "target_modules", tuple(self.target_modules))
        if not isinstance(self.rank, int) or isinstance(self.rank, bool) or self.rank < 1:
            raise ValueError(f"LoRAConfig.rank must be a positive int, got {self.rank!r}")
        if (
            not isinstance(self.alpha, int | float)
            or isinstance(self.alpha, bool)
            or not self.alpha > 0
        ):
            raise ValueError(f"LoRAConfig.alpha must be a positive number, got {self.alpha!r}")
        if not isinstance(self.dropout, int | float) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LoRAConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if not self.target_modules:
            raise ValueError(f"LoRAConfig.target_modules is empty; choose from {TARGET_MODULES}")
        unknown = [m for m in self.target_modules if m not in TARGET_MODULES]
        if unknown:
            raise ValueError(
                f"LoRAConfig.target_modules has unknown names {unknown}; choose from "
                f"{TARGET_MODULES}"
            )
        for key in ("train_layer_norms", "train_heads"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"LoRAConfig.{key} must be a bool, got {getattr(self, key)!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"LoRAConfig.seed must be an int, got {self.seed!r}")

    @property
    def scale(self) -> float:
        return float(self.alpha) / self.rank

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (for checkpoints and experiment tracking)."""
        return asdict(self) | {"target_modules": list(self.target_modules)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoRAConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown keys in LoRAConfig: {unknown}")
        return cls(**data)


def _copy_of(value: jax.Array):
    """An initializer returning ``value`` (rebuilds a layer around existing weights)."""
    return lambda key, shape, dtype: jnp.asarray(value, dtype)


def _linear_args(linear: RowLinear) -> dict[str, Any]:
    args = dict(
        use_bias=linear.use_bias,
        dtype=linear.dtype,
        param_dtype=linear.param_dtype,
        kernel_init=_copy_of(linear.kernel[...]),
    )
    if linear.use_bias:
        args["bias_init"] = _copy_of(linear.bias[...])
    return args


class LoRARowLinear(RowLinear):
    """:class:`RowLinear` plus an ``nnx.LoRA`` adapter scaled by ``alpha / rank``.

    Its ``kernel``/``bias`` keep the base layer's paths; the adapter adds ``lora.lora_a``
    and ``lora.lora_b``. Adapter dropout is off until :func:`set_adapter_dropout`.
    """

    def __init__(self, base: RowLinear, config: LoRAConfig, rngs: nnx.Rngs):
        super().__init__(
            base.in_features, base.out_features, rngs=nnx.Rngs(0), **_linear_args(base)
        )
        self.lora_scale = config.scale
        self.lora = nnx.LoRA(
            base.in_features,
            config.rank,
            base.out_features,
            dtype=base.dtype,
            param_dtype=jnp.float32,
            rngs=rngs,
        )
        self.lora_dropout = (
            nnx.Dropout(config.dropout, deterministic=True, rngs=rngs)
            if config.dropout > 0
            else None
        )

    def __call__(self, inputs: jax.Array) -> jax.Array:
        rows = inputs.reshape(-1, inputs.shape[-1])
        y = nnx.Linear.__call__(self, rows)
        adapter_in = rows if self.lora_dropout is None else self.lora_dropout(rows)
        y = y + self.lora(adapter_in) * jnp.asarray(self.lora_scale, y.dtype)
        return y.reshape(*inputs.shape[:-1], -1)

    def merged_kernel(self) -> jax.Array:
        """``W + (alpha / rank) * A @ B`` in the kernel's (in, out) layout, float32."""
        a = self.lora.lora_a[...].astype(jnp.float32)
        b = self.lora.lora_b[...].astype(jnp.float32)
        return self.kernel[...].astype(jnp.float32) + self.lora_scale * (a @ b)


def _is_target(path: tuple, targets: tuple[str, ...]) -> bool:
    name = str(path[-1])
    qualified = ".".join(str(p) for p in path[-2:])
    return name in targets or qualified in targets


def _projections(model: Model, cls: type) -> list[tuple[nnx.Module, str, tuple, Any]]:
    """(parent, attribute, path, layer) of every ``cls`` layer inside the blocks."""
    found = []
    for path, module in model.iter_modules():
        if path and str(path[0]) == "h" and isinstance(module, nnx.Module):
            for name, child in vars(module).items():
                if isinstance(child, cls):
                    found.append((module, name, (*path, name), child))
    return found


def add_lora(model: Model, config: LoRAConfig) -> Model:
    """A copy of ``model`` with adapters on the projections named by ``config``.

    The base is left untouched; the copy's outputs equal the base's until ``B`` changes.
    """
    if not isinstance(model, GPT | FineGPT):
        raise TypeError(f"add_lora needs a GPT or FineGPT, got {type(model).__name__}")
    if not isinstance(config, LoRAConfig):
        raise TypeError(f"add_lora needs a LoRAConfig, got {type(config).__name__}")
    if any(isinstance(layer, LoRARowLinear) for *_, layer in _projections(model, RowLinear)):
        raise ValueError("model already has adapters; merge_adapters() it first")
    adapted = nnx.clone(model)
    rngs = nnx.Rngs(params=config.seed, dropout=config.seed + 1)
    targets = [
        p for p in _projections(adapted, RowLinear) if _is_target(p[2], config.target_modules)
    ]
    if not targets:
        raise ValueError(f"no projection matches target_modules {config.target_modules}")
    for parent, name, _, layer in targets:
        setattr(parent, name, LoRARowLinear(layer, config, rngs))
    return adapted


def has_adapters(model: Model) -> bool:
    """Whether ``model`` carries LoRA adapters."""
    return bool(_projections(model, LoRARowLinear))


def merge_adapters(model: Model) -> Model:
    """A plain model (no adapters) whose kernels are ``W + (alpha / rank) * A @ B``.

    Its state has exactly the base model's paths and shapes, so it saves and exports
    (Orbax, suno ``.pt``) like any model.
    """
    merged = nnx.clone(model)
    for parent, name, _, layer in _projections(merged, LoRARowLinear):
        args = _linear_args(layer) | {"kernel_init": _copy_of(layer.merged_kernel())}
        setattr(
            parent,
            name,
            RowLinear(layer.in_features, layer.out_features, rngs=nnx.Rngs(0), **args),
        )
    return merged


def set_adapter_dropout(model: Model, active: bool) -> None:
    """Turn the adapters' input dropout on (training) or off (evaluation), in place."""
    for *_, layer in _projections(model, LoRARowLinear):
        if layer.lora_dropout is not None:
            layer.lora_dropout.deterministic = not active


def has_adapter_dropout(model: Model) -> bool:
    """Whether any adapter of ``model`` has input dropout (``LoRAConfig.dropout > 0``)."""
    return any(layer.lora_dropout is not None for *_, layer in _projections(model, LoRARowLinear))


def draw_adapter_dropout(model: Model, key: jax.Array) -> None:
    """Turn adapter dropout on with masks drawn from ``key`` (one stream per layer), in place.

    For a model rebuilt inside a jitted step: each step's ``key`` gives new masks, where the
    dropout's own stream (state outside the step) would repeat the same ones.
    """
    layers = [layer for *_, layer in _projections(model, LoRARowLinear) if layer.lora_dropout]
    for i, layer in enumerate(layers):
        layer.lora_dropout = nnx.Dropout(
            layer.lora_dropout.rate, deterministic=False,
            rngs=nnx.Rngs(dropout=jax.random.fold_in(key, i)),
        )


def trainable_filter(config: LoRAConfig) -> nnx.filterlib.Filter:
    """Filter of the variables an optimizer updates: adapters, plus LayerNorms
    (``train_layer_norms``) and heads (``train_heads``; ``wtes`` for the tied fine model)."""
    parts: list[nnx.filterlib.Filter] = [nnx.LoRAParam]
    if config.train_layer_norms:
        parts.append(
            nnx.All(nnx.Param, nnx.Any(*(nnx.PathContains(n) for n in ("ln_1", "ln_2", "ln_f"))))
        )
    if config.train_heads:
        parts.append(
            nnx.All(nnx.Param, nnx.Any(nnx.PathContains("lm_head"), nnx.PathContains("wtes")))
        )
    return nnx.Any(*parts)


def split_trainable(model: Model, config: LoRAConfig):
    """``nnx.split`` into ``(graphdef, trainable, frozen, rest)``: trainable parameters,
    frozen parameters (the base), and other state (e.g. adapter dropout RNG).
    ``nnx.merge(graphdef, trainable, frozen, rest)`` rebuilds the model."""
    return nnx.split(model, trainable_filter(config), nnx.Param, ...)


def _size(state: nnx.State) -> int:
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(state))


def parameter_counts(model: Model, config: LoRAConfig) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts of an adapted model (total includes adapters).

    Works on an abstract model (``nnx.eval_shape``) too.
    """
    _, trainable, frozen, _ = split_trainable(model, config)
    n_trainable = _size(trainable)
    return n_trainable, n_trainable + _size(frozen)


def adapter_state(model: Model) -> nnx.State:
    """The adapters only (what a LoRA checkpoint stores besides the base digest)."""
    return nnx.state(model, nnx.LoRAParam)


def _base_leaves(model: Model) -> list[tuple[str, jax.Array]]:
    state = nnx.state(model, nnx.All(nnx.Param, nnx.Not(nnx.LoRAParam)))
    flat = nnx.traversals.flatten_mapping(state.to_pure_dict())
    return sorted((".".join(str(p) for p in path), value) for path, value in flat.items())


def base_digest(model: Model) -> str:
    """sha256 (hex) over the base parameters: each path, shape and float32 bytes, sorted by path.

    An adapted model and its base give the same digest.
    """
    digest = hashlib.sha256()
    for path, value in _base_leaves(model):
        array = np.ascontiguousarray(jax.device_get(value), dtype=np.float32)
        digest.update(f"{path}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def check_base(model: Model, expected_digest: str) -> None:
    """Raise ``ValueError`` unless ``model``'s base weights have ``expected_digest``."""
    actual = base_digest(model)
    if actual != expected_digest:
        raise ValueError(
            f"these adapters were trained on the base weights with digest {expected_digest}, "
            f"but the model given has digest {actual}: load the base checkpoint they belong to"
        )


def load_adapters(
    base: Model, config: LoRAConfig, adapters: nnx.State, expected_digest: str
) -> Model:
    """``base`` with saved ``adapters`` applied, after checking it is their base."""
    check_base(base, expected_digest)
    adapted = add_lora(base, config)
    expected = adapter_state(adapted)
    want = {p: v.shape for p, v in nnx.traversals.flatten_mapping(expected.to_pure_dict()).items()}
    pure = adapters.to_pure_dict() if isinstance(adapters, nnx.State) else adapters
    got = {p: np.shape(v) for p, v in nnx.traversals.flatten_mapping(pure).items()}
    if want != got:
        missing = sorted(".".join(map(str, p)) for p in set(want) - set(got))
        extra = sorted(".".join(map(str, p)) for p in set(got) - set(want))
        wrong = sorted(".".join(map(str, p)) for p in set(want) & set(got) if want[p] != got[p])
        raise ValueError(
            f"adapters do not fit this model and LoRAConfig: missing {missing}, "
            f"unexpected {extra}, wrong shape {wrong}"
        )
    expected.replace_by_pure_dict(pure)
    nnx.update(adapted, expected)
    return adapted
