"""Training input at corpus scale: streamed from token shards (Grain) vs built in memory.

Synthetic token corpora of ``--hours`` hours are written directly as token shards (no
audio): Bark's vocabularies (text 119,547, semantic 10,000, 8 codebooks of 1,024), log-normal
utterance durations around 5 s (median 5 s, sigma 0.4, 1-15 s), semantic ids at 49.9 Hz,
codec frames at 75 Hz, about 12 text ids per second, 8 % validation. Each (corpus, stage,
input path) is then trained for ``--steps`` steps in its own process, which reports:

- peak RSS of that process (``ru_maxrss``; it includes the model and optimizer state, whose
  size is printed beside it),
- time from the process's start to the first finished step, and its parts (each the time
  until that mark from the one before): ``imports``, ``model`` (tables opened, model built),
  streamed only: ``records`` (indexes read and joined, both splits), ``bucket_sample``
  (bucket lengths from the shapes of the first records), ``first_chunks`` (the first
  validation batch and the first training chunk planned, read and laid out), then
  ``first_step`` (state, compilation of the eval and train steps, the first evaluation, the
  first step); in memory ``examples`` (every example built) replaces the streamed marks,
- steady-state steps/s (median step rate over the second half of the steps),
- the padding fraction of the first chunk's batches (streamed; the whole epoch in memory).

``memory`` (every example built before the first step) runs only up to
``--memory-max-hours``. Streamed input reads ``--chunk-records`` records at a time (default:
each stage's ``chunk_records`` of ``conf/base/parameters_train.yml``). With ``--repeats N``
each (corpus, stage) that runs both input paths runs them N times, interleaved (streamed, memory, streamed,
...), and a summary line gives the medians and the streamed/memory ratio of steps/s.

    python benchmarks/corpus_scale.py --hours 10 100 [--stages coarse fine] [--steps 40]
        [--preset tiny] [--block-size 1024] [--workdir /tmp/corpus_scale] [--memory-max-hours 10]
        [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from machine import cpu_model

from bark_kedro.models import BARK_VOCAB
from bark_kedro.tokenizers.shards import ShardedTable, ShardWriter
from bark_kedro.tokenizers.tables import (
    CODEC_TOKEN_COLUMNS,
    SEMANTIC_TOKEN_COLUMNS,
    TEXT_TOKEN_COLUMNS,
)

NAMES = ("text_tokens", "semantic_tokens", "codec_tokens")
CHUNK_RECORDS = {"semantic": 1024, "coarse": 1024, "fine": 256}  # as conf/base
STARTED = time.perf_counter()  # as close to the process start as this module gets


def synthetic_batches(hours: float, seed: int = 0, batch_rows: int = 2000, n_speakers: int = 500):
    """Row batches ``{name: DataFrame}`` of a synthetic token corpus of ``hours`` hours
    (each batch's ids drawn in one go, then split per utterance)."""
    rng = np.random.default_rng(seed)
    total_s, first = hours * 3600.0, 0
    while total_s > 0:
        durations = np.clip(rng.lognormal(np.log(5.0), 0.4, batch_rows), 1.0, 15.0)
        durations = durations[np.cumsum(durations) - durations < total_s]
        total_s -= durations.sum()
        n = len(durations)
        base = pd.DataFrame({
            "utterance_id": [f"u{i:08d}" for i in range(first, first + n)],
            "speaker": [f"s{k:04d}" for k in rng.integers(n_speakers, size=n)],
            "split": np.where(rng.random(n) < 0.08, "validation", "train"),
        })
        first += n
        n_text = np.maximum(1, (12 * durations).astype(np.int64))
        n_sem, n_frames = (49.9 * durations).astype(np.int64), (75 * durations).astype(np.int64)

        def ids(lengths, high, dtype, per=1):
            flat = rng.integers(0, high, int(lengths.sum()) * per, dtype=dtype)
            return np.split(flat, np.cumsum(lengths * per)[:-1])

        text = base.assign(text="", text_ids=ids(n_text, BARK_VOCAB.text_vocab_size, np.int32))
        semantic = base.assign(duration_s=durations, semantic_ids=ids(
            n_sem, BARK_VOCAB.semantic_vocab_size, np.int32))
        codec = base.assign(duration_s=durations, n_codebooks=8, n_frames=n_frames,
                            codes=ids(n_frames, BARK_VOCAB.codebook_size, np.int16, per=8))
        yield {"text_tokens": text[TEXT_TOKEN_COLUMNS],
               "semantic_tokens": semantic[SEMANTIC_TOKEN_COLUMNS],
               "codec_tokens": codec[CODEC_TOKEN_COLUMNS]}


def write_corpus(hours: float, folder: Path, rows_per_shard: int) -> dict[str, float]:
    """The three sharded tables of a synthetic corpus (kept when already complete)."""
    if all((folder / name / "_manifest.json").exists() for name in NAMES):
        return {"write_s": float("nan")}
    shutil.rmtree(folder, ignore_errors=True)
    started = time.perf_counter()
    for name in NAMES:  # one pass of the (seeded, so identical) corpus per table
        ShardWriter(folder / name, rows_per_shard).write(
            batch[name] for batch in synthetic_batches(hours))
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    return {"write_s": time.perf_counter() - started, "disk_mb": size / 2**20}


def train_child(args: argparse.Namespace) -> None:
    """One training run; prints its figures as JSON on the last line."""
    import jax

    from bark_kedro.training import (
        ModelInitConfig,
        OptimizerConfig,
        StageDataConfig,
        TrainConfig,
        build_stage_examples,
        build_stage_model,
        stage_vocab,
        train,
    )
    from bark_kedro.training.examples import SPLITS, StageRecords
    from bark_kedro.training.run import stage_streams
    from bark_kedro.training.state import split_model

    marks = {"imports": time.perf_counter()}
    folder = Path(args.corpus)
    tables = {name: ShardedTable(folder / name) for name in NAMES}
    vocab = stage_vocab(BARK_VOCAB.text_vocab_size, BARK_VOCAB.semantic_vocab_size)
    init = ModelInitConfig(preset=args.preset, overrides={"block_size": args.block_size,
                                                          "dropout": 0.0})
    data = StageDataConfig(chunk_records=args.chunk_records)
    model = build_stage_model(args.stage, vocab, init, seed=0)
    config = TrainConfig(stage=args.stage, steps=args.steps, tokens_per_batch=args.tokens_per_batch,
                         eval_every=10 * args.steps, checkpoint_every=10 * args.steps,
                         eval_batches=1, seed=0, progress=False,
                         optimizer=OptimizerConfig(learning_rate=1e-3, warmup_steps=5))
    marks["model"] = time.perf_counter()
    if args.path == "streamed":
        records = {split: StageRecords(args.stage, tables, split) for split in SPLITS}
        marks["records"] = time.perf_counter()
        streams, _ = stage_streams(args.stage, tables, vocab, model.config, data, config,
                                   records_of=records)
        train_in, val_in = streams["train"], streams["validation"]
        marks["bucket_sample"] = time.perf_counter()
        val_in.first_batches(config.eval_batches)  # what train reads first (then cached)
        train_in.chunk(0, 0)
        marks["first_chunks"] = time.perf_counter()
    else:
        frames = [tables[n].to_pandas() for n in NAMES]
        train_in, _ = build_stage_examples(args.stage, *frames, vocab, data, model.config,
                                           "train", 0)
        val_in, _ = build_stage_examples(args.stage, *frames, vocab, data, model.config,
                                         "validation", 0)
        del frames
        marks["examples"] = time.perf_counter()
    done_at: list[float] = []
    result = train(model, train_in, val_in, config, data, args.run_dir,
                   on_metrics=lambda step, m: done_at.append(time.perf_counter()))
    state_bytes = sum(int(np.prod(v.shape)) * 4 for v in
                      jax.tree.leaves(split_model(result.model)[1].trainable)) * 3
    marks["first_step"] = done_at[0]
    names, times = list(marks), [STARTED, *marks.values()]
    gaps = np.diff(done_at)
    steady = gaps[len(gaps) // 2:]
    print(json.dumps({
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "first_step_s": done_at[0] - STARTED,
        "steps_per_s": 1.0 / statistics.median(steady) if len(steady) else float("nan"),
        "padding": result.summary["padding_fraction"],
        "state_mb": state_bytes / 2**20,
        "buckets": result.summary["buckets"],
        "chunk_records": args.chunk_records if args.path == "streamed" else None,
        "until_s": {name: times[k + 1] - times[k] for k, name in enumerate(names)},
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, nargs="+", default=[10.0, 100.0])
    parser.add_argument("--stages", nargs="+", default=["coarse", "fine"])
    parser.add_argument("--paths", nargs="+", default=["streamed", "memory"])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--block-size", type=int, default=1024)
    parser.add_argument("--tokens-per-batch", type=int, default=8192)
    parser.add_argument("--rows-per-shard", type=int, default=10_000)
    parser.add_argument("--chunk-records", type=int, default=None)
    parser.add_argument("--memory-max-hours", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs of each input path, interleaved (medians reported)")
    parser.add_argument("--workdir", default="/tmp/corpus_scale")
    parser.add_argument("--write-only", action="store_true", help="write the corpora, train none")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return train_child(args)
    print(f"CPU: {cpu_model()} ({os.cpu_count()} cores); preset {args.preset}, block size "
          f"{args.block_size}, {args.tokens_per_batch} tokens/batch, {args.steps} steps; load "
          f"average {os.getloadavg()[0]:.1f}")
    work = Path(args.workdir)
    header = (f"{'hours':>6} {'stage':>7} {'input':>9} {'peak RSS MB':>11} {'state MB':>8} "
              f"{'1st step s':>10} {'steps/s':>8} {'padding':>8} {'load':>5}")
    rows = []
    for hours in args.hours:
        corpus = work / f"corpus_{hours:g}h"
        written = write_corpus(hours, corpus, args.rows_per_shard)
        table = ShardedTable(corpus / "codec_tokens")
        print(f"{hours:g} h: {len(table)} utterances in {table.n_shards} shards per table, "
              f"written in {written['write_s']:.1f} s"
              + (f", {written['disk_mb']:.0f} MiB" if "disk_mb" in written else " (reused)"),
              flush=True)
        if args.write_only:
            continue
        for stage in args.stages:
            runs: dict[str, list[dict]] = {}
            paths = [p for p in args.paths if p != "memory" or hours <= args.memory_max_hours]
            for path in paths * (args.repeats if len(paths) > 1 else 1):
                run_dir = work / f"run_{hours:g}_{stage}_{path}"
                shutil.rmtree(run_dir, ignore_errors=True)
                command = [sys.executable, __file__, "--child", "--corpus", str(corpus),
                           "--stage", stage, "--path", path, "--run-dir", str(run_dir),
                           "--steps", str(args.steps), "--preset", args.preset,
                           "--block-size", str(args.block_size),
                           "--tokens-per-batch", str(args.tokens_per_batch),
                           "--chunk-records", str(args.chunk_records or CHUNK_RECORDS[stage])]
                done = subprocess.run(command, capture_output=True, text=True,
                                      env=dict(os.environ, JAX_PLATFORMS="cpu"))
                if done.returncode:
                    print(f"{hours:g} h {stage} {path} failed:\n{done.stderr[-2000:]}")
                    continue
                figures = json.loads(done.stdout.strip().splitlines()[-1])
                rows.append((hours, stage, path, figures))
                runs.setdefault(path, []).append(figures)
                print(header if len(rows) == 1 else "", end="\n" if len(rows) == 1 else "")
                print(f"{hours:>6g} {stage:>7} {path:>9} {figures['peak_rss_mb']:>11.0f} "
                      f"{figures['state_mb']:>8.0f} {figures['first_step_s']:>10.1f} "
                      f"{figures['steps_per_s']:>8.2f} {100 * figures['padding']:>7.1f}% "
                      f"{os.getloadavg()[0]:>5.1f}",
                      flush=True)
                print("       first step: " + ", ".join(
                    f"{name} {s:.1f} s" for name, s in figures["until_s"].items()), flush=True)
            if args.repeats > 1 and len(paths) > 1:
                print(summary(hours, stage, runs), flush=True)


def summary(hours: float, stage: str, runs: dict[str, list[dict]]) -> str:
    """Medians over the repeats of each input path, and the steps/s ratio."""
    medians = {path: {key: statistics.median(r[key] for r in rs)
                      for key in ("peak_rss_mb", "first_step_s", "steps_per_s")}
               for path, rs in runs.items()}
    text = f"{hours:>6g} {stage:>7} medians of {max(map(len, runs.values()))}: " + "; ".join(
        f"{path} {m['peak_rss_mb']:.0f} MB, first step {m['first_step_s']:.1f} s, "
        f"{m['steps_per_s']:.3f} steps/s" for path, m in medians.items())
    if {"streamed", "memory"} <= medians.keys():
        ratio = medians["streamed"]["steps_per_s"] / medians["memory"]["steps_per_s"]
        text += f"; steps/s streamed/memory {ratio:.3f}"
    return text


if __name__ == "__main__":
    main()
