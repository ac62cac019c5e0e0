"""How long a GPU fine-tuning run of each Bark stage takes, from FLOP counts.

For ``bark_small`` and ``bark`` (large) and each stage, the FLOPs per position of one
training step, two ways: XLA's cost analysis of the real LoRA and full train steps
(``training.loop.compile_steps``: forward, backward, clipping, AdamW; lowered on abstract
shapes, nothing is allocated or run) and the analytic count (6 x matmul parameters + 12 x
layers x positions x width for attention; ``benchmarks/training_throughput.py``), which is
full fine-tuning's. LoRA skips the frozen weights' gradients, about 2 of the 6.

Then the time of a workload at a stated fraction (``--mfu``) of a GPU's dense peak:
the ``finetune_bark`` environment's run (``steps`` x ``tokens_per_batch`` positions per stage,
read from conf/finetune_bark/parameters_train.yml) and ``--epochs`` over ``--hours`` of speech.
Positions per audio second: semantic 49.9 (+ the 256-position text context once per clip of
``--clip-seconds``), coarse 49.9 semantic + 2 x 75 coarse, fine 75 frames. Peaks (dense,
vendor data sheets): A100 SXM 156 TFLOP/s TF32 / 312 BF16, H100 SXM 495 TF32 / 989 BF16;
the project trains in float32 (TF32 matmuls on these GPUs) unless ``dtype: bfloat16``.
Evaluation, checkpoints, compilation and data loading are not counted.

    python benchmarks/finetune_gpu_time.py [--seq 1024] [--mfu 0.4] [--hours 1] [--epochs 3]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import yaml
from flax import nnx
from machine import cpu_model  # benchmarks/machine.py
from training_throughput import positions_of, stage_batch, stage_flops_per_position

from bark_kedro.models import BARK_VOCAB, build_model
from bark_kedro.models.lora import LoRAConfig
from bark_kedro.training import MeshConfig, OptimizerConfig
from bark_kedro.training.loop import compile_steps
from bark_kedro.training.mesh import make_mesh, state_shardings
from bark_kedro.training.model_init import CONFIG_BUILDERS, lora_model
from bark_kedro.training.state import make_optimizer, split_model

STAGES = ("semantic", "coarse", "fine")
PRESETS = ("bark_small", "bark")
PEAKS = {"A100 TF32": 156e12, "A100 BF16": 312e12, "H100 TF32": 495e12, "H100 BF16": 989e12}
SEMANTIC_HZ, COARSE_HZ, TEXT_CONTEXT = 49.9, 75.0, 256
TRAIN_CONF = Path(__file__).resolve().parents[1] / "conf/finetune_bark/parameters_train.yml"


def step_flops(model, stage: str, host_batch: dict) -> float:
    """XLA's FLOP count of one train step of ``model`` on ``host_batch`` (abstract shapes)."""
    model_def, state = split_model(model)
    optimizer, _ = make_optimizer(OptimizerConfig(warmup_steps=10), total_steps=1000)
    state = state.replace(opt_state=jax.eval_shape(optimizer.init, state.trainable))
    mesh = make_mesh(MeshConfig())
    steps = compile_steps(model_def, stage, mesh, state_shardings(state, mesh), optimizer)
    batch = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in host_batch.items()}
    return float(steps.train.lower(state, batch, jax.random.key(0)).cost_analysis()["flops"])


def positions_per_audio_second(stage: str, clip_seconds: float) -> float:
    if stage == "semantic":
        return SEMANTIC_HZ + TEXT_CONTEXT / clip_seconds
    return SEMANTIC_HZ + 2 * COARSE_HZ if stage == "coarse" else COARSE_HZ


def env_positions() -> dict[str, int]:
    """``steps x tokens_per_batch`` of each stage in the finetune_bark environment."""
    params = yaml.safe_load(TRAIN_CONF.read_text())
    return {stage: params[f"train_{stage}"]["train"]["steps"]
            * params[f"train_{stage}"]["train"]["tokens_per_batch"] for stage in STAGES}


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq", type=int, default=1024, help="positions per example")
    parser.add_argument("--mfu", type=float, default=0.4, help="fraction of the peak reached")
    parser.add_argument("--hours", type=float, default=1.0, help="hours of speech")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--clip-seconds", type=float, default=5.0)
    parser.add_argument("--rank", type=int, default=16)
    args = parser.parse_args()
    lora = LoRAConfig(rank=args.rank, alpha=2.0 * args.rank)
    print(f"CPU: {cpu_model()}; jax {jax.__version__} (FLOPs from XLA's cost analysis; "
          f"nothing runs)")
    print(f"examples of {args.seq} positions, batch 1; LoRA rank {lora.rank} on "
          f"{list(lora.target_modules)}; times at {args.mfu:.0%} of each dense peak")
    workloads = {"env": env_positions()}  # the finetune_bark run
    workloads["corpus"] = {s: args.hours * 3600 * args.epochs
                         * positions_per_audio_second(s, args.clip_seconds) for s in STAGES}
    print(f"workloads (positions per stage; env: the finetune_bark run's steps x "
          f"tokens_per_batch, corpus: {args.hours:g} h of speech x {args.epochs:g} epochs in "
          f"{args.clip_seconds:g} s clips): " + "; ".join(
        f"{name}: " + ", ".join(f"{s} {n / 1e6:.2f}M" for s, n in w.items())
        for name, w in workloads.items()))
    header = (f"{'preset':<11}{'stage':<9}{'analytic':>10}{'XLA full':>10}{'XLA LoRA':>10}"
              + "".join(f"{f'{w} {p}':>18}" for w in workloads for p in ("A100 TF32", "H100 BF16")))
    rows = []
    for preset in PRESETS:
        for stage in STAGES:
            config = CONFIG_BUILDERS[stage](preset, BARK_VOCAB)
            positions = positions_of(stage, config, args.seq)
            host = stage_batch(stage, config, 1, positions)
            full = step_flops(nnx.eval_shape(lambda c=config: build_model(c, seed=0)), stage,
                              host) / positions
            adapted = step_flops(nnx.eval_shape(
                lambda c=config: lora_model(build_model(c, seed=0), lora)), stage, host) / positions
            analytic = stage_flops_per_position(stage, config, positions)
            times = [w[stage] * adapted / (PEAKS[p] * args.mfu)
                     for w in workloads.values() for p in ("A100 TF32", "H100 BF16")]
            rows.append(f"{preset:<11}{stage:<9}{analytic / 1e9:>9.2f}G{full / 1e9:>9.2f}G"
                        f"{adapted / 1e9:>9.2f}G" + "".join(f"{duration(t):>18}" for t in times))
            print(f"  counted {preset} {stage}", flush=True)
    print("\nFLOPs per position of a train step; LoRA run times:")
    print(header)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
