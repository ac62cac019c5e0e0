"""Reload the adapters of a LoRA training run onto their base model."""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp

from bark_kedro.models.lora import LoRAConfig, check_base, merge_adapters
from bark_kedro.training.checkpoints import TrainCheckpoints
from bark_kedro.training.model_init import Model, lora_model
from bark_kedro.training.state import merge_model, split_model


def load_lora_run(run_dir: str | Path, base: Model, step: int | None = None,
                  merge: bool = True) -> Model:
    """``base`` with the trainable parameters of a LoRA run's checkpoint (default: newest).

    Fails, naming both digests, when ``base`` is not the model the adapters were trained on,
    and when the run is not a LoRA run. ``merge``: fold the adapters into the kernels (a plain
    model that exports to every format) or keep them.
    """
    checkpoints = TrainCheckpoints(run_dir, keep=1_000_000)
    try:
        meta = checkpoints.read_meta(step)
        if not meta.get("base_digest") or not meta.get("lora"):
            raise ValueError(f"{run_dir} is not a LoRA run (its checkpoints hold no adapters)")
        check_base(base, meta["base_digest"])
        adapted = lora_model(base, LoRAConfig.from_dict(meta["lora"]))
        model_def, state = split_model(adapted)
        stored = checkpoints.read_params(step)["trainable"]
        if set(stored) != set(state.trainable):
            raise ValueError(
                f"{run_dir}: its trainable parameters {sorted(set(stored) ^ set(state.trainable))} "
                "do not match the adapters of its LoRA config"
            )
        trainable = {name: jnp.asarray(stored[name]) for name in state.trainable}
    finally:
        checkpoints.close()
    model = merge_model(model_def, state.replace(trainable=trainable))
    return merge_adapters(model) if merge else model
