"""LoRA vs full fine-tuning: trainable parameters and AdamW state bytes of each stage.

Shapes only (``nnx.eval_shape``: no weights are allocated, so the full ``bark`` preset costs
nothing). For each preset and stage prints total parameters, trainable parameters and the
bytes of AdamW's state (float32 moments) when every parameter trains and when only the
adapters do (rank, alpha and targets from the command line).

    python benchmarks/lora_parameters.py [--presets bark_small bark] [--rank 8]
"""

from __future__ import annotations

import argparse

import jax
import numpy as np
import optax
from flax import nnx
from machine import cpu_model  # benchmarks/machine.py

from bark_kedro.models import build_model, coarse_config, fine_config, semantic_config
from bark_kedro.models.lora import LoRAConfig, add_lora, parameter_counts, split_trainable

STAGES = {"semantic": semantic_config, "coarse": coarse_config, "fine": fine_config}




def state_bytes(tree) -> int:
    return sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


def adamw_bytes(params) -> int:
    return state_bytes(jax.eval_shape(optax.adamw(1e-4).init, params))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["bark_small", "bark"])
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--alpha", type=float, default=16.0)
    parser.add_argument("--targets", nargs="+", default=["c_attn", "c_proj", "c_fc"])
    args = parser.parse_args()
    lora = LoRAConfig(rank=args.rank, alpha=args.alpha, target_modules=tuple(args.targets))
    print(f"CPU: {cpu_model()}; jax {jax.__version__} (shapes only, nothing is run)")
    print(f"LoRA: rank {lora.rank}, alpha {lora.alpha}, targets {list(lora.target_modules)}")
    print(
        f"{'preset':<11}{'stage':<10}{'total':>13}{'LoRA trainable':>16}{'share':>8}"
        f"{'AdamW full MB':>15}{'AdamW LoRA MB':>15}{'ratio':>8}"
    )
    for preset in args.presets:
        for stage, make in STAGES.items():
            config = make(preset)
            base = nnx.eval_shape(lambda config=config: build_model(config))
            adapted = nnx.eval_shape(lambda config=config: add_lora(build_model(config), lora))
            trainable, total = parameter_counts(adapted, lora)
            full = adamw_bytes(nnx.state(base, nnx.Param))
            _, adapters, _, _ = split_trainable(adapted, lora)
            only = adamw_bytes(adapters)
            print(
                f"{preset:<11}{stage:<10}{total:>13,}{trainable:>16,}{trainable / total:>8.2%}"
                f"{full / 2**20:>15.1f}{only / 2**20:>15.2f}{only / full:>8.2%}"
            )


if __name__ == "__main__":
    main()
