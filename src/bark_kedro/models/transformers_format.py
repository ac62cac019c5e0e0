"""Bark checkpoints in the Hugging Face ``transformers`` format.

Sub-models ``BarkSemanticModel`` / ``BarkCoarseModel`` / ``BarkFineModel`` (a state dict,
or a ``save_pretrained`` directory) and a whole ``BarkModel`` directory, whose weights
carry the prefixes ``semantic.``, ``coarse_acoustics.``, ``fine_acoustics.`` (the
``codec_model.`` weights are not read here). The transformers package is not needed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from bark_kedro.models.config import FineGPTConfig, GPTConfig, ModelConfig
from bark_kedro.models.convert import TRANSFORMERS, Model, model_from_torch_state
from bark_kedro.models.tokens import BARK_VOCAB, BarkVocab

SUBMODELS = {"semantic": "semantic", "coarse_acoustics": "coarse", "fine_acoustics": "fine"}
_ALIASES = {  # our name -> names transformers configs may use
    "n_layer": ("num_layers", "num_hidden_layers"),
    "n_head": ("num_heads", "num_attention_heads"),
    "n_embd": ("hidden_size",),
    "block_size": ("block_size", "window_size"),
    "input_vocab_size": ("input_vocab_size", "vocab_size"),
    "output_vocab_size": ("output_vocab_size", "vocab_size"),
}


def _get(cfg: Mapping[str, Any], ours: str, source: str) -> Any:
    for name in _ALIASES[ours]:
        if name in cfg:
            return cfg[name]
    raise KeyError(f"{source}: config lacks {_ALIASES[ours][0]!r}")


def config_from_transformers(
    cfg: Mapping[str, Any],
    vocab: BarkVocab = BARK_VOCAB,
    source: str = "transformers config",
    **overrides: Any,
) -> ModelConfig:
    """Our config from a transformers sub-model config dict (its ``model_type`` picks the stage)."""
    model_type = cfg.get("model_type")
    if model_type not in SUBMODELS:
        raise ValueError(
            f"{source}: model_type must be one of {sorted(SUBMODELS)}, got {model_type!r}"
        )
    args = {k: _get(cfg, k, source) for k in _ALIASES}
    args |= dict(bias=bool(cfg.get("bias", True)), dropout=float(cfg.get("dropout", 0.0)))
    if model_type == "fine_acoustics":
        args |= dict(
            n_codes_total=int(cfg.get("n_codes_total", 8)),
            n_codes_given=int(cfg.get("n_codes_given", 1)),
        )
        return FineGPTConfig(**(args | {"vocab": vocab} | overrides))
    return GPTConfig(**(args | {"stage": SUBMODELS[model_type], "vocab": vocab} | overrides))


def model_from_transformers_state_dict(
    state_dict: Mapping[str, Any], config: ModelConfig, source: str = "transformers state dict"
) -> Model:
    """Flax model from a ``BarkSemanticModel``/``BarkCoarseModel``/``BarkFineModel`` state dict."""
    return model_from_torch_state(config, state_dict, TRANSFORMERS, source)


def read_transformers_weights(directory: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a ``save_pretrained`` directory (safetensors, sharded or not, or .bin)."""
    from safetensors.torch import load_file

    directory = Path(directory)
    index = directory / "model.safetensors.index.json"
    if (directory / "model.safetensors").is_file():
        return load_file(directory / "model.safetensors")
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
        tensors: dict[str, torch.Tensor] = {}
        for shard in sorted(set(weight_map.values())):
            tensors |= load_file(directory / shard)
        return tensors
    if (directory / "pytorch_model.bin").is_file():
        return torch.load(directory / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise FileNotFoundError(
        f"no model.safetensors, model.safetensors.index.json or pytorch_model.bin in {directory}"
    )


def _read_config(directory: Path) -> dict[str, Any]:
    path = directory / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"no config.json in {directory}")
    return json.loads(path.read_text())


def load_transformers_model(
    directory: str | Path, vocab: BarkVocab = BARK_VOCAB, **overrides: Any
) -> tuple[Model, ModelConfig]:
    """Load a saved ``BarkSemanticModel``/``BarkCoarseModel``/``BarkFineModel`` directory."""
    directory = Path(directory)
    config = config_from_transformers(_read_config(directory), vocab, str(directory), **overrides)
    weights = read_transformers_weights(directory)
    return model_from_transformers_state_dict(weights, config, str(directory)), config


def load_transformers_bark(
    directory: str | Path, vocab: BarkVocab = BARK_VOCAB, **overrides: Any
) -> dict[str, tuple[Model, ModelConfig]]:
    """Load the three GPTs of a saved ``BarkModel``: ``{"semantic"|"coarse"|"fine": (model, config)}``."""
    directory = Path(directory)
    cfg = _read_config(directory)
    if cfg.get("model_type") != "bark":
        raise ValueError(f"{directory}: model_type must be 'bark', got {cfg.get('model_type')!r}")
    weights = read_transformers_weights(directory)
    out = {}
    for prefix, stage in SUBMODELS.items():
        key = f"{prefix}_config"
        if key not in cfg:
            raise KeyError(f"{directory}/config.json lacks {key!r}")
        sub_cfg = dict(cfg[key], model_type=prefix)
        config = config_from_transformers(sub_cfg, vocab, f"{directory}:{key}", **overrides)
        sub = {k[len(prefix) + 1 :]: v for k, v in weights.items() if k.startswith(prefix + ".")}
        model = model_from_transformers_state_dict(sub, config, f"{directory}:{prefix}")
        out[stage] = (model, config)
    return out
