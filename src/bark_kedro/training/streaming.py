"""Training batches streamed from token records with Grain, bounded in memory by a chunk.

Each epoch, the records of :class:`~bark_kedro.training.examples.StageRecords` are shuffled
globally by index with a seed from ``(seed, epoch)`` (``grain.MapDataset.shuffle``) and
taken ``chunk_records`` at a time. A chunk's batch plan comes from the shapes of its
examples, laid out from the records' lengths in the token index (no token is read:
:meth:`~bark_kedro.training.examples.ExampleBuilder.shapes`), by the in-memory rule
(:class:`~bark_kedro.training.batching.BucketBatcher`: leftovers carried to the next
bucket, the last short batch filled with repeats) over bucket lengths chosen once from
the shapes of the first records (:func:`~bark_kedro.training.batching.best_bucket_lengths`).
The records are split into ``batch_multiple`` contiguous blocks by index (device blocks:
whole shards where they line up); a record's examples only fill its block's rows of a
batch. Every process computes the same plan; then Grain threads read and lay out
(:class:`~bark_kedro.training.examples.ExampleBuilder`) only the records of this process's
blocks, and each batch holds only this process's rows (the loop assembles the global batch
over the mesh). So every process reads its own contiguous slice of the records (the same
every epoch), the slices together are all of them, and the batches are those of one
process with as many devices. A corpus that fits in one chunk is batched exactly as in memory.

The iterator state is a :class:`~bark_kedro.training.batching.DataPosition` (epoch, chunk,
batches of that chunk consumed): the records are addressed by index, so resuming rebuilds
only the current chunk and continues bit for bit.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grain
import numpy as np

from bark_kedro.training.batching import (
    Batch,
    BucketBatcher,
    DataPosition,
    best_bucket_lengths,
    collate,
)
from bark_kedro.training.config import StageDataConfig
from bark_kedro.training.examples import (
    ExampleBuilder,
    RecordExamples,
    StageRecords,
    count_examples,
)
from bark_kedro.training.layouts import Example

log = logging.getLogger(__name__)
READ_LOG_ENV = "BARK_KEDRO_READ_LOG"  # a folder: each process writes the records it read


@dataclass(frozen=True)
class Chunk:
    """One chunk of records: its batch plan (example indices, ``-1`` an empty row) over the
    examples' ``lengths`` (``owner[k]``: record and position of example ``k``), and the
    examples of this process's rows (``examples``, empty until read)."""

    plan: list[tuple[int, np.ndarray]]
    lengths: np.ndarray
    owner: list[tuple[int, int]]
    padding_fraction: float
    records: int
    examples: dict[int, Example] = field(default_factory=dict)


def _plan_padding(plan: list[tuple[int, np.ndarray]], lengths: np.ndarray,
                  rows_of) -> float:
    total = sum(rows_of(b) * b for b, _ in plan)
    real = sum(int(lengths[idx[idx >= 0]].sum()) for _, idx in plan)
    return 1.0 - real / total if total else 0.0


class StreamedBatches:
    """Fixed-shape batches of one stage's split, streamed (see the module doc).

    ``tokens_per_batch``, ``batch_multiple``, ``max_length`` and ``fill_with_repeats`` mean
    what they mean for :func:`~bark_kedro.training.examples.make_batcher`; ``shuffle``
    off keeps index order (validation); ``chunk_records`` defaults to the data config's;
    ``bucket_sample_records``: the first records whose shapes choose the bucket lengths;
    ``read_threads`` Grain threads read and lay out records; ``process_index`` of
    ``process_count`` (default: JAX's) selects this process's rows, a contiguous share of
    every batch. With ``track_reads`` (default: when ``BARK_KEDRO_READ_LOG`` is set)
    :attr:`records_read` collects the records this process laid out.
    """

    def __init__(
        self,
        records: StageRecords,
        builder: ExampleBuilder,
        data_config: StageDataConfig,
        tokens_per_batch: int,
        batch_multiple: int = 1,
        seed: int = 0,
        max_length: int | None = None,
        *,
        fill_with_repeats: bool = False,
        shuffle: bool = True,
        chunk_records: int | None = None,
        bucket_sample_records: int = 1024,
        read_threads: int = 4,
        process_index: int | None = None,
        process_count: int | None = None,
        track_reads: bool | None = None,
    ):
        chunk_records = data_config.chunk_records if chunk_records is None else chunk_records
        if chunk_records < 1 or bucket_sample_records < 1 or read_threads < 1:
            raise ValueError("chunk_records, bucket_sample_records and read_threads must be >= 1")
        if process_index is None or process_count is None:
            import jax

            process_index, process_count = jax.process_index(), jax.process_count()
        if not 0 <= process_index < process_count or batch_multiple % process_count:
            raise ValueError(f"process {process_index} of {process_count}: the processes must "
                             f"divide the batch multiple ({batch_multiple}) evenly")
        self.records, self.builder, self.seed = records, builder, seed
        self.tokens_per_batch, self.batch_multiple = tokens_per_batch, batch_multiple
        self.fill_with_repeats, self.shuffle = fill_with_repeats, shuffle
        self.chunk_records, self.read_threads = chunk_records, read_threads
        self.process_index, self.process_count = process_index, process_count
        self.n_records = len(records)
        if self.n_records == 0:
            raise ValueError(f"no {records.stage} {records.split} records to read")
        self.n_chunks = -(-self.n_records // chunk_records)
        shapes = [builder.shapes(records, i)
                  for i in range(min(bucket_sample_records, self.n_records))]
        self.sample_counts = count_examples(records, shapes)
        lengths = [e.length for r in shapes for e in r.examples]
        if not lengths:
            raise ValueError(f"the first {bucket_sample_records} {records.stage} "
                             f"{records.split} records give no examples")
        buckets = best_bucket_lengths(lengths, data_config.max_buckets,
                                      data_config.bucket_multiple, max_length)
        if max_length is not None and buckets[-1] < max_length and self.n_chunks > 1:
            buckets.append(max_length)  # a later chunk may hold longer examples
        self.buckets = np.asarray(buckets, np.int64)
        self.records_read: set[int] = set()
        self.track_reads = bool(os.environ.get(READ_LOG_ENV)) if track_reads is None else track_reads
        self._chunks: dict[tuple[int, int], Chunk] = {}
        self._padding: dict[tuple[int, int], float] = {}  # of every chunk planned
        self._closed = False
        self.first_epoch_examples = 0  # counted by epoch_batches()
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="next-chunk")
        self._next: tuple[tuple[int, int], concurrent.futures.Future] | None = None

    def _build(self, indices: list[int]) -> dict[int, RecordExamples]:
        options = grain.ReadOptions(num_threads=self.read_threads,
                                    prefetch_buffer_size=4 * self.read_threads)
        dataset = grain.MapDataset.source(indices).map(
            lambda i: self.builder.map(self.records[i]))
        return {r.index: r for r in dataset.to_iter_dataset(options)}

    def epoch_order(self, epoch: int) -> grain.MapDataset:
        """The record indices in the order of ``epoch``."""
        dataset = grain.MapDataset.range(self.n_records)
        if not self.shuffle:
            return dataset
        seed = int(np.random.default_rng([self.seed, epoch]).integers(2**31 - 1))
        return dataset.shuffle(seed=seed)

    def batch_size(self, bucket: int) -> int:
        """Rows of a global batch of padded length ``bucket`` (as :class:`BucketBatcher`)."""
        rows = self.tokens_per_batch // bucket
        return max(self.batch_multiple, rows // self.batch_multiple * self.batch_multiple)

    def local_rows(self, bucket: int) -> tuple[int, int]:
        """This process's ``[start, end)`` rows of a batch of padded length ``bucket``."""
        size = self.batch_size(bucket)
        return (size * self.process_index // self.process_count,
                size * (self.process_index + 1) // self.process_count)

    def _plan_chunk(self, epoch: int, chunk: int) -> Chunk:
        """The batch plan of a chunk, from the shapes of its examples (no token read)."""
        lo = chunk * self.chunk_records
        order = [int(i) for i in self.epoch_order(epoch)[lo:lo + self.chunk_records]]
        lengths, groups, blocks, owner = [], [], [], []
        for i in order:
            for j, example in enumerate(self.builder.shapes(self.records, i).examples):
                lengths.append(example.length)
                groups.append(example.group)
                blocks.append(i * self.batch_multiple // self.n_records)
                owner.append((i, j))
        if not lengths:
            return Chunk([], np.zeros(0, np.int64), [], 0.0, len(order))
        batcher = BucketBatcher(
            lengths, buckets=self.buckets, tokens_per_batch=self.tokens_per_batch,
            groups=groups, seed=self.seed, batch_multiple=self.batch_multiple,
            carry_remainder=True, fill_with_repeats=self.fill_with_repeats,
            blocks=blocks, n_blocks=self.batch_multiple)
        plan = batcher.plan(epoch * self.n_chunks + chunk)  # a fresh shuffle for every chunk
        return Chunk(plan, batcher.lengths, owner,
                     _plan_padding(plan, batcher.lengths, self.batch_size), len(order))

    def _make_chunk(self, epoch: int, chunk: int) -> Chunk:
        """The planned chunk with the examples of this process's rows read and laid out."""
        planned = self._plan_chunk(epoch, chunk)
        mine = set()
        for bucket, idx in planned.plan:
            start, end = self.local_rows(bucket)
            mine.update(int(k) for k in idx[start:end] if k >= 0)
        needed = sorted({planned.owner[k][0] for k in mine})
        built = self._build(needed)
        examples = {}
        for k in mine:
            i, j = planned.owner[k]
            example = built[i].examples[j]
            if example.length != planned.lengths[k]:
                raise ValueError(f"{self.records.stage} record {i}: example {j} has "
                                 f"{example.length} positions, its shape {planned.lengths[k]}")
            examples[k] = example
        if self.track_reads:
            self.records_read.update(needed)
        return Chunk(planned.plan, planned.lengths, planned.owner, planned.padding_fraction,
                     planned.records, examples)

    def _following(self, epoch: int, chunk: int) -> tuple[int, int]:
        return (epoch, chunk + 1) if chunk + 1 < self.n_chunks else (epoch + 1, 0)

    def chunk(self, epoch: int, chunk: int) -> Chunk:
        """Chunk ``chunk`` of ``epoch`` (built now, or taken from the background build)."""
        key = (epoch, chunk)
        if key not in self._chunks:
            if self._next is not None and self._next[0] == key:
                self._chunks[key] = self._next[1].result()
            else:
                self._chunks[key] = self._make_chunk(epoch, chunk)
            self._padding[key] = self._chunks[key].padding_fraction
            for old in [k for k in self._chunks if k != key]:
                del self._chunks[old]  # only the current chunk stays in memory
        return self._chunks[key]

    def prefetch(self, epoch: int, chunk: int) -> None:
        """Start building chunk ``chunk`` of ``epoch`` in the background (one at a time)."""
        key = (epoch, chunk)
        if self._closed or key in self._chunks or (self._next and self._next[0] == key):
            return
        self._next = (key, self._pool.submit(self._make_chunk, epoch, chunk))

    def padding_fraction(self, epoch: int = 0) -> float:
        """Padding of the first chunk of ``epoch`` (the whole epoch when it is one chunk)."""
        if (epoch, 0) not in self._padding:
            self._padding[(epoch, 0)] = self._plan_chunk(epoch, 0).padding_fraction
        return self._padding[(epoch, 0)]

    def _batch(self, current: Chunk, bucket: int, idx: np.ndarray) -> Batch:
        """This process's rows of a planned batch, with ``n_positions``: the real positions
        of the whole (global) batch."""
        start, end = self.local_rows(bucket)
        rows = [current.examples[int(k)] if k >= 0 else None for k in idx[start:end]]
        template = None
        if all(r is None for r in rows):  # shapes of an example of the batch, no read
            i, j = current.owner[int(idx[idx >= 0][0])]
            template = self.builder.shapes(self.records, i).examples[j]
        batch = collate(rows, bucket, end - start, template)
        batch["n_positions"] = np.asarray(current.lengths[idx[idx >= 0]].sum(), np.int64)
        return batch

    def iterate(self, start: DataPosition | None = None,
                prefetch: bool = True) -> Iterator[tuple[DataPosition, Batch]]:
        """This process's rows of the batches from ``start`` on, forever; each with the
        position *after* it. With ``prefetch``, the next chunk starts building in the
        background when the second batch of a chunk is asked for (so it does not compete
        with what comes before the first step: the first evaluation and the compilation)."""
        start = start or DataPosition()
        epoch, chunk, index = start.epoch, start.chunk, start.index
        empty_run = 0
        while True:
            current = self.chunk(epoch, chunk)
            if index > len(current.plan):
                raise ValueError(f"{start} is past the {len(current.plan)} batches of chunk "
                                 f"{chunk} of epoch {epoch}")
            empty_run = empty_run + 1 if not current.plan else 0
            if empty_run > self.n_chunks:
                raise ValueError(f"no {self.records.stage} examples in any chunk of "
                                 f"{self.records.split}")
            following = self._following(epoch, chunk)
            for i in range(index, len(current.plan)):
                if prefetch and i == index + 1:
                    self.prefetch(*following)
                bucket, idx = current.plan[i]
                after = (DataPosition(epoch, i + 1, chunk) if i + 1 < len(current.plan)
                         else DataPosition(following[0], 0, following[1]))
                yield after, self._batch(current, bucket, idx)
            (epoch, chunk), index = following, 0

    def first_batches(self, n: int = 0) -> list[Batch]:
        """This process's rows of the first ``n`` batches of epoch 0 (every batch of it
        when ``n`` is 0)."""
        if n:
            return [b for _, b in itertools.islice(self.iterate(prefetch=False), n)]
        return list(self.epoch_batches())

    def epoch_batches(self) -> Iterator[Batch]:
        """This process's rows of every batch of epoch 0, read a chunk at a time (the next
        chunk built in the background); counts :attr:`first_epoch_examples`."""
        self.first_epoch_examples = 0
        for chunk in range(self.n_chunks):
            current = self.chunk(0, chunk)
            if chunk + 1 < self.n_chunks:
                self.prefetch(0, chunk + 1)
            self.first_epoch_examples += len(current.lengths)
            for bucket, idx in current.plan:
                yield self._batch(current, bucket, idx)

    def close(self) -> None:
        """Stop the background build and drop the chunks held; with ``BARK_KEDRO_READ_LOG``
        set, write the utterance ids this process read to
        ``<it>/<stage>-<split>-process<k>.json``."""
        self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._chunks.clear()
        self._next = None
        folder = os.environ.get(READ_LOG_ENV)
        if folder:
            path = (Path(folder) / f"{self.records.stage}-{self.records.split}-"
                    f"process{self.process_index}.json")
            path.parent.mkdir(parents=True, exist_ok=True)
            ids = sorted(str(self.records.utterance_ids[i]) for i in self.records_read)
            path.write_text(json.dumps(ids))
