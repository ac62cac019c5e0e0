"""Training throughput of each stage: our jitted train step vs transformers' Bark (PyTorch).

Ours: ``bark_kedro.training.step.train_step`` compiled as ``train()`` compiles it (stage
softmax ranges, global-norm clipping, AdamW with warmup/cosine and a weight-decay mask,
donated buffers), on a batch in the stage's real layout (semantic: merged text+history
context; coarse: per-position codebook; fine: one predicted codebook). PyTorch:
``transformers``' BarkSemanticModel / BarkCoarseModel / BarkFineModel with
``torch.optim.AdamW`` and full-vocabulary cross-entropy (``models_throughput.torch_steps``).
Same config, batch and positions on both sides (the semantic model gets ``context +
seq`` positions when ``seq`` does not exceed its merged context, so that it has targets).
Each implementation runs in its own worker process; the workers are stepped in turn and
each figure is the median of ``--steps`` timed steps after ``--warmup`` untimed ones.

MFU = model FLOP/s / the float32 matmul peak measured in the same run (the peak and the
batch/PyTorch helpers are ``benchmarks/models_throughput.py``'s). Model FLOPs are those the
stage's loss needs (:func:`stage_flops_per_position`): the blocks at every position, the
head only over the ids the stage's softmax covers (semantic: ids + EOS, at the positions
after the merged context; coarse: the two codebooks; fine: one codebook). Ours computes
just these; PyTorch computes the full head everywhere, which this count leaves out.

Then the padding fraction of batches on a realistic length distribution (log-normal durations, median 5 s, as in
LibriTTS/LJSpeech) without bucketing, with fixed buckets, and with ``make_batcher``.

    python benchmarks/training_throughput.py [--presets tiny bark_small] [--steps 5]
        [--skip-padding]
    python benchmarks/training_throughput.py --demo-steps 100   # conf/base-like stage runs
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import torch
from models_throughput import flops_per_token, make_batch, matmul_peak, torch_steps

from bark_kedro.models import BARK_VOCAB, build_model
from bark_kedro.training import MeshConfig, OptimizerConfig, StageDataConfig, stage_vocab
from bark_kedro.training.batching import BucketBatcher, bucket_lengths, naive_padding_fraction
from bark_kedro.training.examples import make_batcher
from bark_kedro.training.layouts import Example, coarse_examples
from bark_kedro.training.loop import compile_steps, place_state
from bark_kedro.training.mesh import global_batch, make_mesh
from bark_kedro.training.model_init import CONFIG_BUILDERS
from bark_kedro.training.state import make_optimizer, split_model

BIG = ("bark_small", "bark")  # official vocabulary
DEFAULT_BATCH = {"test": 8, "tiny": 4, "bark_small": 1, "bark": 1}
SMALL_VOCAB = stage_vocab(256, 50)  # the embedded default: characters, 50 k-means clusters


def positions_of(stage: str, config, seq: int) -> int:
    """Model positions of a benchmark example (semantic: at least one target after the
    merged context)."""
    if stage == "semantic" and seq <= config.merge_context_len + 1:
        return config.merge_context_len + seq
    return seq


def stage_flops_per_position(stage: str, config, positions: int) -> float:
    """Training FLOPs per model position that the stage's loss needs (see the docstring)."""
    c, v = config.n_embd, config.vocab
    body = flops_per_token(config, positions)[1] - 6 * c * config.output_vocab_size
    if stage == "semantic":
        with_loss = max(positions - config.merge_context_len, 0) / positions
        return body + 6 * c * (v.semantic_vocab_size + 1) * with_loss
    books = v.n_coarse_codebooks if stage == "coarse" else 1
    return body + 6 * c * books * v.codebook_size


def stage_batch(stage: str, config, batch: int, positions: int, seed: int = 0) -> dict:
    """A host batch in the stage's training layout, random valid ids, loss everywhere it
    would be in a real example."""
    rng = np.random.default_rng(seed)
    v = config.vocab
    mask = np.ones((batch, positions), bool)
    if stage == "fine":
        inputs = rng.integers(0, v.codebook_size, (batch, positions, v.n_fine_codebooks))
        return {"inputs": inputs.astype(np.int32), "targets": inputs[:, :, 2].astype(np.int32),
                "loss_mask": mask, "codebook": np.full(batch, 2, np.int32)}
    if stage == "coarse":
        codebook = np.tile(np.arange(positions) % 2, (batch, 1)).astype(np.int32)
        local = rng.integers(0, v.codebook_size, (batch, positions))
        targets = v.semantic_vocab_size + codebook * v.codebook_size + local
        inputs = rng.integers(0, v.coarse_vocab_size, (batch, positions))
        return {"inputs": inputs.astype(np.int32), "targets": targets.astype(np.int32),
                "loss_mask": mask, "codebook": codebook}
    ctx = config.merge_context_len
    inputs = rng.integers(0, v.semantic_vocab_size, (batch, positions + ctx))
    inputs[:, :ctx] = v.text_encoding_offset + rng.integers(0, v.text_vocab_size, (batch, ctx))
    inputs[:, 2 * ctx] = v.semantic_infer_token
    targets = rng.integers(0, v.semantic_vocab_size + 1, (batch, positions))
    mask[:, :ctx] = False
    return {"inputs": inputs.astype(np.int32), "targets": targets.astype(np.int32),
            "loss_mask": mask}


def our_train_step(stage: str, config, host_batch: dict):
    """A closure running one real training step (blocking until done)."""
    mesh = make_mesh(MeshConfig())
    model_def, state = split_model(build_model(config, seed=0))
    optimizer, _ = make_optimizer(OptimizerConfig(warmup_steps=10), total_steps=1000)
    state, shardings = place_state(state.replace(opt_state=optimizer.init(state.trainable)), mesh)
    steps = compile_steps(model_def, stage, mesh, shardings, optimizer)
    box = {"state": state}
    batch, key = global_batch(host_batch, mesh), jax.random.key(0)

    def run():
        box["state"], metrics = steps.train(box["state"], batch, key)
        metrics["loss"].block_until_ready()

    return run


def _step_closure(impl: str, stage: str, preset: str, batch: int, seq: int):
    config = CONFIG_BUILDERS[stage](preset, BARK_VOCAB if preset in BIG else SMALL_VOCAB)
    positions = positions_of(stage, config, seq)
    if impl == "ours":
        return our_train_step(stage, config, stage_batch(stage, config, batch, positions))
    x, y = make_batch(config, batch, positions)
    return torch_steps(config, x, y, "cpu")[1]


def worker(impl: str, stage: str, preset: str, batch: int, seq: int) -> None:
    """Serve timed steps of one implementation: read "step", answer its seconds."""
    jax.config.update("jax_default_matmul_precision", "highest")
    torch.set_float32_matmul_precision("highest")
    step = _step_closure(impl, stage, preset, batch, seq)
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "step":
            break
        start = time.perf_counter()
        step()
        print(time.perf_counter() - start, flush=True)


def alternating_seconds(cases: list[list[str]], warmup: int, steps: int) -> list[float]:
    """Median seconds per step of each worker process, stepped in turn (A B A B ...): a
    load change on a shared machine hits every implementation alike, and no two thread
    pools (XLA's, PyTorch's OpenMP) compete inside one process. OpenMP threads sleep
    instead of spin-waiting (``OMP_WAIT_POLICY=PASSIVE``): on a shared, oversubscribed
    CPU spinning made PyTorch up to 2x slower, which would flatter us."""
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", *case], text=True, env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE) for case in cases]
    try:
        for proc in procs:
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"worker {proc.args} failed to start")
        times = [[] for _ in procs]
        for i in range(warmup + steps):
            for proc, out in zip(procs, times, strict=True):
                proc.stdin.write("step\n")
                proc.stdin.flush()
                seconds = float(proc.stdout.readline())
                if i >= warmup:
                    out.append(seconds)
        return [statistics.median(t) for t in times]
    finally:
        for proc in procs:
            proc.stdin.close()
            proc.wait(timeout=60)


def throughput(args) -> None:
    """Time every (preset, stage); the peak is the best of matmul_peak() measured before
    and after each case (a single measurement on a loaded machine undershoots)."""
    peaks, rows = [matmul_peak()], []
    for preset in args.presets:
        vocab = BARK_VOCAB if preset in BIG else SMALL_VOCAB
        batch = args.batch or DEFAULT_BATCH[preset]
        for stage in args.stages:
            config = CONFIG_BUILDERS[stage](preset, vocab)
            positions = positions_of(stage, config, args.seq)
            case = [stage, preset, str(batch), str(args.seq)]
            t_ours, t_torch = alternating_seconds(
                [["ours", *case], ["torch", *case]], args.warmup, args.steps)
            rows.append((preset, stage, batch, positions,
                         stage_flops_per_position(stage, config, positions),
                         batch * positions / t_ours, batch * positions / t_torch))
            peaks.append(matmul_peak())
            print(f"  timed {preset} {stage}", file=sys.stderr, flush=True)
    peak = max(peaks)
    print(f"float32 matmul peak (jnp.dot 2048x2048, best of {len(peaks)} measurements): "
          f"{peak / 1e9:.1f} GFLOP/s (lowest {min(peaks) / 1e9:.1f})\n")
    print(f"{'preset':<11}{'stage':<9}{'batch':>6}{'pos':>5}{'ours tok/s':>12}{'MFU':>7}"
          f"{'torch tok/s':>13}{'MFU':>7}{'ours/torch':>12}")
    for preset, stage, batch, positions, flops, ours, theirs in rows:
        print(f"{preset:<11}{stage:<9}{batch:>6}{positions:>5}{ours:>12,.0f}"
              f"{ours * flops / peak:>7.1%}{theirs:>13,.0f}{theirs * flops / peak:>7.1%}"
              f"{ours / theirs:>11.2f}x")


def _fake(length: int) -> Example:
    ids = np.zeros(length, np.int32)
    return Example(ids, ids, np.ones(length, bool), None, 0)


def padding(n_utterances: int, tokens_per_batch: int, seed: int = 0) -> None:
    """Padding fractions of Bark-size semantic and coarse examples of realistic lengths."""
    rng = np.random.default_rng(seed)
    seconds = np.clip(rng.lognormal(np.log(5.0), 0.5, n_utterances), 1.0, 15.0)
    semantic = (257 + np.minimum(seconds * 49.9, 766)).astype(int)  # context + infer + ids
    coarse = []
    for s in seconds:
        sem = rng.integers(0, 100, int(s * 49.9))
        codes = rng.integers(0, 1024, (2, int(s * 75)))
        coarse += [e.length for e in coarse_examples(sem, codes, BARK_VOCAB)]
    print(f"\npadded positions, {n_utterances} utterances of log-normal durations (median 5 s), "
          f"{tokens_per_batch} positions per batch:")
    print(f"{'stage':<9}{'examples':>9}{'pad to max':>12}{'buckets of 64':>15}{'make_batcher':>14}")
    for stage, lengths, longest in (("semantic", semantic, 1023), ("coarse", coarse, 1024)):
        lengths = np.asarray(lengths)
        rows = max(1, tokens_per_batch // longest)
        naive = naive_padding_fraction(lengths, longest, rows)
        fixed = BucketBatcher(lengths, buckets=bucket_lengths(longest, 64),
                              tokens_per_batch=tokens_per_batch).padding_fraction(0)
        ours = make_batcher([_fake(n) for n in lengths], StageDataConfig(), tokens_per_batch,
                            fill_with_repeats=True).padding_fraction(0)
        print(f"{stage:<9}{len(lengths):>9}{naive:>12.1%}{fixed:>15.1%}{ours:>14.1%}")


def demo_training(steps: int) -> None:
    """Each stage trained as ``conf/base`` does (tiny preset, 2048 positions per batch,
    lr 2e-3, 20 warm-up steps) on demo-sized synthetic tables: 240 utterances, 8 speakers,
    texts of 18-94 characters (tests/training/synthetic.py: learnable token rules)."""
    import shutil
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bark_kedro.training import (
        ModelInitConfig,
        TrainConfig,
        build_stage_examples,
        build_stage_model,
        train,
    )
    from tests.training.synthetic import token_tables

    vocab = stage_vocab(100, 50)
    tables = token_tables(vocab, n_utterances=240, n_speakers=8, text_len=(18, 95), val_every=10)
    print(f"\n{steps} steps per stage, demo-sized synthetic corpus (216 train / 24 validation)")
    print(f"{'stage':<9}{'wall s':>7}{'examples':>9}{'padding':>8}{'tok/s':>7}"
          f"{'val loss 0 -> end':>19}{'top1 0 -> end':>15}")
    for stage in ("semantic", "coarse", "fine"):
        overrides = {"block_size": 512, "merge_context_len": 128} if stage == "semantic" else {}
        model = build_stage_model(stage, vocab, ModelInitConfig("tiny", overrides), seed=0)
        data = StageDataConfig()
        train_ex, val_ex = (build_stage_examples(stage, *tables, vocab, data, model.config,
                                                 split, 0)[0] for split in ("train", "validation"))
        config = TrainConfig(stage=stage, steps=steps, tokens_per_batch=2048, eval_every=25,
                             checkpoint_every=50, progress=False,
                             optimizer=OptimizerConfig(learning_rate=2e-3, warmup_steps=20))
        run_dir = tempfile.mkdtemp()
        start = time.perf_counter()
        s = train(model, train_ex, val_ex, config, data, run_dir).summary
        wall = time.perf_counter() - start
        shutil.rmtree(run_dir)
        print(f"{stage:<9}{wall:>7.0f}{len(train_ex):>9}{s['padding_fraction']:>8.1%}"
              f"{s['tokens_per_s']:>7,.0f}{s['initial_val_loss']:>10.2f} -> "
              f"{s['final_val_loss']:<5.2f}{s['initial_val_top1']:>8.2f} -> "
              f"{s['final_val_top1']:.2f}", flush=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        impl, stage, preset, batch, seq = sys.argv[2:7]
        worker(impl, stage, preset, int(batch), int(seq))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "bark_small"])
    parser.add_argument("--stages", nargs="+", default=["semantic", "coarse", "fine"])
    parser.add_argument("--batch", type=int, default=0, help="rows (default: per preset)")
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--utterances", type=int, default=5000)
    parser.add_argument("--tokens-per-batch", type=int, default=16384)
    parser.add_argument("--skip-padding", action="store_true")
    parser.add_argument("--demo-steps", type=int, default=0,
                        help="instead: train each stage this many steps on a demo-sized corpus")
    args = parser.parse_args()
    if args.demo_steps:
        demo_training(args.demo_steps)
        return

    jax.config.update("jax_default_matmul_precision", "highest")
    torch.set_float32_matmul_precision("highest")
    print(f"JAX {jax.__version__} on {jax.devices()[0].device_kind} ({jax.device_count()} "
          f"device); torch {torch.__version__} with {torch.get_num_threads()} threads; "
          f"median of {args.steps} train steps after {args.warmup} warm-up")
    throughput(args)
    if not args.skip_padding:
        padding(args.utterances, args.tokens_per_batch)


if __name__ == "__main__":
    main()
