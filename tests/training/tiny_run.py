"""A tiny training run in its own process, for the kill/resume and multi-device tests.

    python -m tests.training.tiny_run RUN_DIR OUT_PREFIX --stage coarse --steps 30 \
        --checkpoint-every 5 [--mesh 4x2 ...]

Prints ``step N`` after each step (flushed). For each ``--mesh`` (default: all devices
data parallel) trains from scratch in ``RUN_DIR/<mesh>`` and writes
``OUT_PREFIX<mesh>.npz`` (final parameters) and ``OUT_PREFIX<mesh>.json`` (losses).
With ``JAX_COORDINATOR_ADDRESS`` / ``JAX_NUM_PROCESSES`` / ``JAX_PROCESS_ID`` set it is
one process of a multi-process run: every process trains, process 0 prints and writes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from bark_kedro.tokenizers.shards import ShardedTable, write_shards
from bark_kedro.training import (
    MeshConfig,
    ModelInitConfig,
    OptimizerConfig,
    StageDataConfig,
    TrainConfig,
    build_stage_examples,
    build_stage_model,
    is_primary,
    maybe_initialize_distributed,
    stage_vocab,
    train,
)
from bark_kedro.training.run import stage_streams
from bark_kedro.training.state import split_model
from tests.training.synthetic import token_tables


def sharded_tables(tables, folder: Path) -> dict[str, ShardedTable]:
    """The tables as shards of 7 rows under ``folder`` (written by the first run)."""
    out = {}
    for name, table in zip(("text_tokens", "semantic_tokens", "codec_tokens"), tables,
                           strict=True):
        path = folder / name
        out[name] = ShardedTable(path) if path.exists() else write_shards(table, path, 7)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("out_prefix")
    parser.add_argument("--stage", default="coarse")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--checkpoint-every", type=int, default=5)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--mesh", nargs="*", default=["-1x1"])
    parser.add_argument("--sleep", type=float, default=0.0, help="seconds after each step")
    parser.add_argument("--streamed", action="store_true",
                        help="stream the examples from sharded tables (Grain), 8 records a chunk")
    parser.add_argument("--tables", help="the sharded tables' folder (written when absent; "
                        "default RUN_DIR/<mesh>-tables; several processes: write it first)")
    args = parser.parse_args()
    maybe_initialize_distributed()

    vocab = stage_vocab(40, 64, 1024)
    tables = token_tables(vocab, n_utterances=30)
    init = ModelInitConfig(preset="test", overrides={"dropout": args.dropout})
    data = StageDataConfig(max_buckets=1)
    for mesh in args.mesh:
        model = build_stage_model(args.stage, vocab, init, seed=1)
        train_ex, _ = build_stage_examples(args.stage, *tables, vocab, data, model.config,
                                           "train", seed=1)
        val_ex, _ = build_stage_examples(args.stage, *tables, vocab, data, model.config,
                                         "validation", seed=1)
        longest = max(e.length for e in train_ex)
        bucket = -(-longest // data.bucket_multiple) * data.bucket_multiple
        n_data, n_fsdp = (int(v) for v in mesh.split("x"))
        config = TrainConfig(
            stage=args.stage, steps=args.steps, tokens_per_batch=8 * bucket,
            eval_every=args.steps, checkpoint_every=args.checkpoint_every, seed=3,
            optimizer=OptimizerConfig(learning_rate=1e-2, warmup_steps=3),
            mesh=MeshConfig(data=n_data, fsdp=n_fsdp), progress=False,
        )

        def report(step, metrics):
            print(f"step {step} loss {metrics['loss']:.6f}", flush=True)
            time.sleep(args.sleep)  # gives a test time to kill the process mid-run

        if args.streamed:
            shards = sharded_tables(tables, Path(args.tables or f"{args.run_dir}/{mesh}-tables"))
            streams, _ = stage_streams(args.stage, shards, vocab, model.config, data, config,
                                       chunk_records=8)
            train_ex, val_ex = streams["train"], streams["validation"]
        result = train(model, train_ex, val_ex, config, data, f"{args.run_dir}/{mesh}",
                       on_metrics=report)
        if args.streamed:
            val_ex.close()  # (and train() closed train_ex): their read logs are written
        trainable = split_model(result.model)[1].trainable
        if not is_primary():
            continue
        np.savez(f"{args.out_prefix}{mesh}.npz", **{k: np.asarray(v) for k, v in trainable.items()})
        losses = [row["loss"] for row in result.history["train"]]
        with open(f"{args.out_prefix}{mesh}.json", "w") as f:
            json.dump({"losses": losses, "summary": result.summary}, f, default=str)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
