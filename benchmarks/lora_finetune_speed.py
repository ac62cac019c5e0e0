"""LoRA vs full fine-tuning at a preset's shape (default ``bark_small``), each stage:
training tokens/s and AdamW state bytes side by side, in one run.

Both train the same model (random weights of the official vocabulary's shape) with the same
compiled step ``train()`` uses (``training.step.train_step``: clipping, AdamW, donated
buffers), on the same batch in the stage's layout; "full" updates every parameter, "lora"
only the adapters (``training.model_init.lora_model``: the base frozen, no gradient or
optimizer state for it). Steps of the two alternate (a load change on a shared machine hits
both alike); each figure is the median of ``--steps`` timed steps after one compiling step.

    python benchmarks/lora_finetune_speed.py [--preset bark_small] [--seq 256] [--batch 1]
        [--steps 5] [--stages semantic coarse fine] [--rank 8]
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import numpy as np
from machine import cpu_model  # benchmarks/machine.py
from training_throughput import positions_of, stage_batch

from bark_kedro.models import BARK_VOCAB, build_model
from bark_kedro.models.lora import LoRAConfig
from bark_kedro.training import MeshConfig, OptimizerConfig
from bark_kedro.training.loop import compile_steps, place_state
from bark_kedro.training.mesh import global_batch, make_mesh
from bark_kedro.training.model_init import CONFIG_BUILDERS, lora_model
from bark_kedro.training.state import make_optimizer, split_model


def tree_bytes(tree) -> int:
    return sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


def step_runner(model, stage: str, host_batch: dict):
    """``(run one step, trainable parameter count, optimizer state bytes)``."""
    mesh = make_mesh(MeshConfig())
    model_def, state = split_model(model)
    optimizer, _ = make_optimizer(OptimizerConfig(warmup_steps=10), total_steps=1000)
    state = state.replace(opt_state=optimizer.init(state.trainable))
    n_trainable = sum(int(np.prod(v.shape)) for v in state.trainable.values())
    opt_bytes = tree_bytes(state.opt_state)
    state, shardings = place_state(state, mesh)
    compiled = compile_steps(model_def, stage, mesh, shardings, optimizer)
    box = {"state": state}
    batch, key = global_batch(host_batch, mesh), jax.random.key(0)

    def run() -> float:
        start = time.perf_counter()
        box["state"], metrics = compiled.train(box["state"], batch, key)
        metrics["loss"].block_until_ready()
        return time.perf_counter() - start

    return run, n_trainable, opt_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="bark_small")
    parser.add_argument("--stages", nargs="+", default=["semantic", "coarse", "fine"])
    parser.add_argument("--seq", type=int, default=256, help="positions per example")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5, help="timed steps of each")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--alpha", type=float, default=16.0)
    parser.add_argument("--targets", nargs="+", default=["c_attn", "c_proj", "c_fc"])
    args = parser.parse_args()
    lora = LoRAConfig(rank=args.rank, alpha=args.alpha, target_modules=tuple(args.targets))
    print(f"CPU: {cpu_model()}; jax {jax.__version__}, {jax.device_count()} device(s) "
          f"({jax.devices()[0].platform})")
    print(f"{args.preset}, batch {args.batch} x {args.seq} positions, median of {args.steps} "
          f"steps; LoRA rank {lora.rank}, alpha {lora.alpha}, targets {list(lora.target_modules)}")
    rows = []
    for stage in args.stages:
        config = CONFIG_BUILDERS[stage](args.preset, BARK_VOCAB)
        positions = positions_of(stage, config, args.seq)
        host = stage_batch(stage, config, args.batch, positions)
        # two builds: the full step donates its buffers, which a shared base would lose
        full = step_runner(build_model(config, seed=0), stage, host)
        adapted = step_runner(lora_model(build_model(config, seed=0), lora), stage, host)
        runs = (full[0], adapted[0])
        for run in runs:  # compile
            run()
        times: list[list[float]] = [[], []]
        for _ in range(args.steps):
            for run, out in zip(runs, times, strict=True):
                out.append(run())
        tokens = args.batch * positions
        rows.append((stage, positions, full[1], adapted[1],
                     tokens / statistics.median(times[0]), tokens / statistics.median(times[1]),
                     full[2], adapted[2]))
        print(f"  timed {stage}", flush=True)
    print(f"\n{'stage':<9}{'pos':>5}{'trainable full':>16}{'trainable LoRA':>16}"
          f"{'full tok/s':>12}{'LoRA tok/s':>12}{'speed-up':>10}"
          f"{'AdamW full MB':>15}{'AdamW LoRA MB':>15}{'LoRA/full':>11}")
    for stage, positions, n_full, n_lora, tok_full, tok_lora, b_full, b_lora in rows:
        print(f"{stage:<9}{positions:>5}{n_full:>16,}{n_lora:>16,}{tok_full:>12,.0f}"
              f"{tok_lora:>12,.0f}{tok_lora / tok_full:>9.2f}x{b_full / 2**20:>15,.1f}"
              f"{b_lora / 2**20:>15,.2f}{b_lora / b_full:>11.2%}")


if __name__ == "__main__":
    main()
