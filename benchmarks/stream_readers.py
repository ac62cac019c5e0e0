"""Reading one streamed training chunk: Grain threads vs Grain worker processes.

The records of a chunk (a globally shuffled slice of a stage's train records of a sharded
token corpus, e.g. one written by ``benchmarks/corpus_scale.py``) are read and laid out into
examples by Grain with ``read_threads`` threads in this process (what
:class:`~bark_kedro.training.streaming.StreamedBatches` does), or by ``mp_prefetch`` worker
processes (each opens the tables itself; records and examples cross by pickling). Prints the
seconds per chunk (median of ``--repeats``; the processes' start is timed apart).

    python benchmarks/stream_readers.py --corpus /tmp/corpus_scale/corpus_1000h \\
        [--stage coarse] [--records 1024] [--threads 1 4] [--workers 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import grain
import numpy as np
from absl import flags
from machine import cpu_model

from bark_kedro.models import BARK_VOCAB
from bark_kedro.tokenizers.shards import ShardedTable
from bark_kedro.training import ModelInitConfig, StageDataConfig, build_stage_model, stage_vocab
from bark_kedro.training.examples import NEEDED, ExampleBuilder, StageRecords


class ReadRecord(grain.transforms.Map):
    """Record ``i`` -> its examples (picklable, for worker processes)."""

    def __init__(self, records: StageRecords, builder: ExampleBuilder):
        self.records, self.builder = records, builder

    def map(self, i: int):
        return self.builder.map(self.records[i])


def read_chunk(read: ReadRecord, indices: list[int], threads: int, workers: int) -> float:
    """Seconds to read and lay out ``indices`` (threads, or ``workers`` processes)."""
    started = time.perf_counter()
    dataset = grain.MapDataset.source(indices).map(read).to_iter_dataset(
        grain.ReadOptions(num_threads=threads, prefetch_buffer_size=4 * threads))
    if workers:
        dataset = dataset.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
    n = sum(len(r.examples) for r in dataset)
    if n == 0:
        raise ValueError("the chunk gave no examples")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--stage", default="coarse")
    parser.add_argument("--records", type=int, default=1024)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--workers", type=int, nargs="+", default=[2])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    flags.FLAGS(sys.argv[:1], known_only=True)  # Grain's worker processes read its flags
    folder = Path(args.corpus)
    tables = {name: ShardedTable(folder / name) for name in NEEDED[args.stage]}
    records = StageRecords(args.stage, tables, "train")
    vocab = stage_vocab(BARK_VOCAB.text_vocab_size, BARK_VOCAB.semantic_vocab_size)
    config = build_stage_model(args.stage, vocab, ModelInitConfig(
        preset="tiny", overrides={"block_size": 1024}), seed=0).config
    read = ReadRecord(records, ExampleBuilder(args.stage, vocab, StageDataConfig(), config))
    print(f"CPU: {cpu_model()} ({os.cpu_count()} cores); load average "
          f"{os.getloadavg()[0]:.1f}; {args.stage}, {len(records)} train records, chunks of "
          f"{args.records} shuffled records")
    rng = np.random.default_rng(0)
    chunks = [rng.choice(len(records), args.records, replace=False).tolist()
              for _ in range(args.repeats)]
    for threads in args.threads:
        times = [read_chunk(read, c, threads, 0) for c in chunks]
        print(f"threads {threads}: {statistics.median(times):.2f} s per chunk "
              f"({', '.join(f'{t:.2f}' for t in times)})", flush=True)
    for workers in args.workers:
        started = read_chunk(read, chunks[0][:8], 1, workers)  # mostly the processes' start
        times = [read_chunk(read, c, 1, workers) for c in chunks]
        print(f"processes {workers}: {statistics.median(times):.2f} s per chunk "
              f"({', '.join(f'{t:.2f}' for t in times)}; a chunk of 8 records "
              f"{started:.2f} s)", flush=True)


if __name__ == "__main__":
    main()
