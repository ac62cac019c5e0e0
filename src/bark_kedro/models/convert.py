"""Map PyTorch state dicts (suno and transformers naming) to and from the Flax models.

One table per naming scheme says which torch key holds which Flax parameter; loading
checks every key and shape and fails with a message naming the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from bark_kedro.models.config import FineGPTConfig, ModelConfig
from bark_kedro.models.fine_gpt import FineGPT
from bark_kedro.models.gpt import GPT

Model = GPT | FineGPT


@dataclass(frozen=True)
class NameScheme:
    """Torch names of the parameters in one checkpoint format."""

    wte: str
    wtes: str  # fine: one table per codebook, "{n}" = codebook
    wpe: str
    block: str  # "{i}" = layer
    block_parts: dict[str, str]  # flax sub-path -> torch sub-name
    ln_f: str
    lm_head: str
    lm_heads: str  # fine: "{i}" = head (codebook n_codes_given + i)
    buffer_suffix: str = ".attn.bias"  # causal-mask buffers, not parameters


SUNO = NameScheme(
    wte="transformer.wte",
    wtes="transformer.wtes.{n}",
    wpe="transformer.wpe",
    block="transformer.h.{i}",
    block_parts={
        "ln_1": "ln_1",
        "attn.c_attn": "attn.c_attn",
        "attn.c_proj": "attn.c_proj",
        "ln_2": "ln_2",
        "mlp.c_fc": "mlp.c_fc",
        "mlp.c_proj": "mlp.c_proj",
    },
    ln_f="transformer.ln_f",
    lm_head="lm_head",
    lm_heads="lm_heads.{i}",
)
TRANSFORMERS = NameScheme(
    wte="input_embeds_layer",
    wtes="input_embeds_layers.{n}",
    wpe="position_embeds_layer",
    block="layers.{i}",
    block_parts={
        "ln_1": "layernorm_1",
        "attn.c_attn": "attn.att_proj",
        "attn.c_proj": "attn.out_proj",
        "ln_2": "layernorm_2",
        "mlp.c_fc": "mlp.in_proj",
        "mlp.c_proj": "mlp.out_proj",
    },
    ln_f="layernorm_final",
    lm_head="lm_head",
    lm_heads="lm_heads.{i}",
)

_TORCH_LEAF = {"kernel": "weight", "scale": "weight", "embedding": "weight", "bias": "bias"}


def _path_str(path: tuple) -> str:
    return ".".join(str(p) for p in path)


def _table(flat: dict[tuple, Any], names: NameScheme) -> dict[str, tuple]:
    """torch key -> flax path, for every flax parameter except the stacked fine tables."""
    table = {}
    for path in flat:
        if path == ("wtes",):
            continue
        head, leaf = path[:-1], _TORCH_LEAF[path[-1]]
        if head[0] == "h":
            part = names.block_parts[_path_str(head[2:])]
            module = f"{names.block.format(i=head[1])}.{part}"
        else:
            module = {
                "wte": names.wte,
                "wpe": names.wpe,
                "ln_f": names.ln_f,
                "lm_head": names.lm_head,
            }[head[0]]
        table[f"{module}.{leaf}"] = path
    return table


def abstract_model(config: ModelConfig) -> Model:
    """The model for ``config`` with shapes only (no parameter memory)."""
    cls = FineGPT if isinstance(config, FineGPTConfig) else GPT
    return nnx.eval_shape(lambda: cls(config, rngs=nnx.Rngs(0)))


def _to_numpy(value: Any, key: str, source: str) -> np.ndarray:
    if hasattr(value, "detach"):  # torch tensor
        value = value.detach().cpu().float().numpy()
    try:
        return np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{source}: key {key!r} is not a numeric array ({err})") from err


def _check_shape(array: np.ndarray, shape: tuple, key: str, source: str) -> None:
    if tuple(array.shape) != tuple(shape):
        raise ValueError(
            f"{source}: key {key!r} has shape {tuple(array.shape)}, the config expects {tuple(shape)}"
        )


def model_from_torch_state(
    config: ModelConfig, state_dict: Mapping[str, Any], names: NameScheme, source: str
) -> Model:
    """Build the Flax model for ``config`` from a torch-style state dict."""
    state_dict = {k.removeprefix("_orig_mod."): v for k, v in state_dict.items()}
    graphdef, abstract = nnx.split(abstract_model(config))
    pure = abstract.to_pure_dict()
    flat = dict(nnx.traversals.flatten_mapping(pure))
    table = _table(flat, names)
    expected = set(table)
    if isinstance(config, FineGPTConfig):
        wte_keys = [f"{names.wtes.format(n=n)}.weight" for n in range(config.n_codes_total)]
        head_keys = [
            f"{names.lm_heads.format(i=i)}.weight"
            for i in range(config.n_codes_total - config.n_codes_given)
        ]
        expected |= set(wte_keys)
    else:
        head_keys = []
    missing = sorted(expected - set(state_dict))
    if missing:
        raise KeyError(f"{source}: missing keys {missing}")
    unexpected = sorted(
        k
        for k in set(state_dict) - expected - set(head_keys)
        if not k.endswith(names.buffer_suffix)
    )
    if unexpected:
        raise KeyError(f"{source}: unexpected keys {unexpected}")
    values: dict[tuple, np.ndarray] = {}
    for key, path in table.items():
        array = _to_numpy(state_dict[key], key, source)
        if path[-1] == "kernel":
            array = array.T
        _check_shape(array, flat[path].shape, key, source)
        values[path] = array
    if isinstance(config, FineGPTConfig):
        tables = [_to_numpy(state_dict[k], k, source) for k in wte_keys]
        for key, array in zip(wte_keys, tables, strict=True):
            _check_shape(array, flat[("wtes",)].shape[1:], key, source)
        for i, key in enumerate(head_keys):
            if key in state_dict:
                head = _to_numpy(state_dict[key], key, source)
                tied = tables[i + config.n_codes_given]
                _check_shape(head, tied.shape, key, source)
                if not np.array_equal(head, tied):
                    raise ValueError(
                        f"{source}: key {key!r} differs from {wte_keys[i + config.n_codes_given]!r}; "
                        "the fine model ties each head to its codebook's input embedding"
                    )
        values[("wtes",)] = np.stack(tables)
    pure = nnx.traversals.unflatten_mapping({p: jnp.asarray(v) for p, v in values.items()})
    abstract.replace_by_pure_dict(pure)
    return nnx.merge(graphdef, abstract)


def model_to_torch_state(model: Model, names: NameScheme) -> dict[str, np.ndarray]:
    """Torch-style state dict (float32 numpy arrays) of a Flax model, heads included."""
    if nnx.state(model, nnx.LoRAParam):
        raise ValueError(
            "model has LoRA adapters: merge them first (bark_kedro.models.lora.merge_adapters)"
        )
    pure = nnx.state(model, nnx.Param).to_pure_dict()
    flat = {
        p: np.asarray(jax.device_get(v), np.float32)
        for p, v in nnx.traversals.flatten_mapping(pure).items()
    }
    out = {}
    for key, path in _table(flat, names).items():
        out[key] = flat[path].T if path[-1] == "kernel" else flat[path]
    if isinstance(model, FineGPT):
        cfg = model.config
        tables = flat[("wtes",)]
        for n in range(cfg.n_codes_total):
            out[f"{names.wtes.format(n=n)}.weight"] = tables[n]
        for i in range(cfg.n_codes_total - cfg.n_codes_given):
            out[f"{names.lm_heads.format(i=i)}.weight"] = tables[i + cfg.n_codes_given]
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def gpt_config_args(config: ModelConfig) -> dict[str, Any]:
    """Sizes shared by every checkpoint format (names as in suno's ``model_args``)."""
    args = dict(
        n_layer=config.n_layer,
        n_head=config.n_head,
        n_embd=config.n_embd,
        block_size=config.block_size,
        bias=config.bias,
        dropout=float(config.dropout),
        input_vocab_size=config.input_vocab_size,
        output_vocab_size=config.output_vocab_size,
    )
    if isinstance(config, FineGPTConfig):
        args |= dict(n_codes_total=config.n_codes_total, n_codes_given=config.n_codes_given)
    return args
