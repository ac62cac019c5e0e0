"""Training batches streamed from token records with Grain, bounded in memory by a chunk.

Each epoch, the records of :class:`~bark_kedro.training.examples.StageRecords` (this
process's slice of them: :func:`process_slice`) are shuffled globally by index with a seed
from ``(seed, epoch)`` (``grain.MapDataset.shuffle``) and read ``chunk_records`` at a time;
Grain threads read the rows and run :class:`~bark_kedro.training.examples.ExampleBuilder`
(the layout functions) per record. Each chunk's examples are batched by the in-memory rule
(:class:`~bark_kedro.training.batching.BucketBatcher`: leftovers carried to the next
bucket, the last short batch filled with repeats) over bucket lengths chosen once from the
examples of the first records (:func:`~bark_kedro.training.batching.best_bucket_lengths`),
so padding stays as low as in memory while only one chunk (and the next, built in the
background) is held. A corpus that fits in one chunk is batched exactly as in memory.

The iterator state is a :class:`~bark_kedro.training.batching.DataPosition` (epoch, chunk,
batches of that chunk consumed): the records are addressed by index, so resuming rebuilds
only the current chunk and continues bit for bit.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass

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


def process_slice(n_records: int, options: grain.sharding.ShardOptions) -> tuple[int, int]:
    """The ``[start, end)`` records process ``options.shard_index`` of
    ``options.shard_count`` reads: contiguous (whole shards where they line up), disjoint,
    covering every record (equal sizes, a remainder dropped, with ``drop_remainder``)."""
    k, count = options.shard_index, options.shard_count
    if not 0 <= k < count:
        raise ValueError(f"shard_index {k} must lie in [0, {count})")
    if options.drop_remainder:
        size = n_records // count
        return k * size, (k + 1) * size
    return n_records * k // count, n_records * (k + 1) // count


def jax_process_options() -> grain.sharding.ShardOptions:
    """``ShardByJaxProcess`` when several JAX processes run, else no sharding."""
    import jax

    if jax.process_count() > 1:
        return grain.sharding.ShardByJaxProcess(drop_remainder=True)
    return grain.sharding.NoSharding()


@dataclass(frozen=True)
class Chunk:
    """The examples of one chunk of records and their batch plan."""

    examples: list[Example]
    plan: list[tuple[int, np.ndarray]]
    padding_fraction: float
    records: int


class StreamedBatches:
    """Fixed-shape batches of one stage's split, streamed (see the module doc).

    ``tokens_per_batch``, ``batch_multiple``, ``max_length`` and ``fill_with_repeats`` mean
    what they mean for :func:`~bark_kedro.training.examples.make_batcher`; ``shuffle``
    off keeps index order (validation); ``read_threads`` Grain threads read and lay out
    records; ``shard_options`` selects this process's records.
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
        chunk_records: int = 4096,
        bucket_sample_records: int = 4096,
        read_threads: int = 4,
        shard_options: grain.sharding.ShardOptions | None = None,
    ):
        if chunk_records < 1 or bucket_sample_records < 1 or read_threads < 1:
            raise ValueError("chunk_records, bucket_sample_records and read_threads must be >= 1")
        self.records, self.builder, self.seed = records, builder, seed
        self.tokens_per_batch, self.batch_multiple = tokens_per_batch, batch_multiple
        self.fill_with_repeats, self.shuffle = fill_with_repeats, shuffle
        self.chunk_records, self.read_threads = chunk_records, read_threads
        self.shard_options = shard_options or grain.sharding.NoSharding()
        self.start, self.end = process_slice(len(records), self.shard_options)
        self.dataset = grain.MapDataset.source(records)[self.start:self.end]
        self.n_records = self.end - self.start
        if self.n_records == 0:
            raise ValueError(f"no {records.stage} {records.split} records to read "
                             f"({len(records)} in all, this process's slice is empty)")
        self.n_chunks = -(-self.n_records // chunk_records)
        built = self._build(self.dataset[:bucket_sample_records])
        self.sample_counts = count_examples(records, built)
        sample = [e for r in built for e in r.examples]
        if not sample:
            raise ValueError(f"the first {bucket_sample_records} {records.stage} "
                             f"{records.split} records give no examples")
        lengths = [e.length for e in sample]
        buckets = best_bucket_lengths(lengths, data_config.max_buckets,
                                      data_config.bucket_multiple, max_length)
        if max_length is not None and buckets[-1] < max_length and self.n_chunks > 1:
            buckets.append(max_length)  # a later chunk may hold longer examples
        self.buckets = np.asarray(buckets, np.int64)
        self._chunks: dict[tuple[int, int], Chunk] = {}
        self._padding: dict[tuple[int, int], float] = {}  # of every chunk built
        self._closed = False
        self.first_epoch_examples = 0  # counted by first_batches(0)
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="next-chunk")
        self._next: tuple[tuple[int, int], concurrent.futures.Future] | None = None

    def _build(self, dataset: grain.MapDataset) -> list[RecordExamples]:
        options = grain.ReadOptions(num_threads=self.read_threads,
                                    prefetch_buffer_size=4 * self.read_threads)
        return list(dataset.map(self.builder).to_iter_dataset(options))

    def epoch_order(self, epoch: int) -> grain.MapDataset:
        """This process's records in the order of ``epoch``."""
        if not self.shuffle:
            return self.dataset
        seed = int(np.random.default_rng([self.seed, epoch]).integers(2**31 - 1))
        return self.dataset.shuffle(seed=seed)

    def _make_chunk(self, epoch: int, chunk: int) -> Chunk:
        lo = chunk * self.chunk_records
        built = self._build(self.epoch_order(epoch)[lo:lo + self.chunk_records])
        examples = [e for r in built for e in r.examples]
        if not examples:
            return Chunk([], [], 0.0, len(built))
        batcher = BucketBatcher(
            [e.length for e in examples], buckets=self.buckets,
            tokens_per_batch=self.tokens_per_batch, groups=[e.group for e in examples],
            seed=self.seed, batch_multiple=self.batch_multiple, carry_remainder=True,
            fill_with_repeats=self.fill_with_repeats)
        plan_epoch = epoch * self.n_chunks + chunk  # a fresh shuffle for every chunk
        return Chunk(examples, batcher.plan(plan_epoch), batcher.padding_fraction(plan_epoch),
                     len(built))

    def _following(self, epoch: int, chunk: int) -> tuple[int, int]:
        return (epoch, chunk + 1) if chunk + 1 < self.n_chunks else (epoch + 1, 0)

    def chunk(self, epoch: int, chunk: int) -> Chunk:
        """Chunk ``chunk`` of ``epoch`` (built now, or taken from the background build);
        the one after it starts building in the background."""
        key = (epoch, chunk)
        if key not in self._chunks:
            if self._next is not None and self._next[0] == key:
                self._chunks[key] = self._next[1].result()
            else:
                self._chunks[key] = self._make_chunk(epoch, chunk)
            self._padding[key] = self._chunks[key].padding_fraction
            for old in [k for k in self._chunks if k != key]:
                del self._chunks[old]  # only the current chunk stays in memory
            following = self._following(epoch, chunk)
            if not self._closed:
                self._next = (following, self._pool.submit(self._make_chunk, *following))
        return self._chunks[key]

    def batch_size(self, bucket: int) -> int:
        """Rows of a batch of padded length ``bucket`` (as :class:`BucketBatcher`)."""
        rows = self.tokens_per_batch // bucket
        return max(self.batch_multiple, rows // self.batch_multiple * self.batch_multiple)

    def padding_fraction(self, epoch: int = 0) -> float:
        """Padding of the first chunk of ``epoch`` (the whole epoch when it is one chunk)."""
        if (epoch, 0) not in self._padding:
            self._padding[(epoch, 0)] = self._make_chunk(epoch, 0).padding_fraction
        return self._padding[(epoch, 0)]

    def iterate(self, start: DataPosition | None = None) -> Iterator[tuple[DataPosition, Batch]]:
        """Batches from ``start`` on, forever; each with the position *after* it."""
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
                bucket, idx = current.plan[i]
                batch = collate([current.examples[j] for j in idx], bucket,
                                self.batch_size(bucket))
                after = (DataPosition(epoch, i + 1, chunk) if i + 1 < len(current.plan)
                         else DataPosition(following[0], 0, following[1]))
                yield after, batch
            (epoch, chunk), index = following, 0

    def first_batches(self, n: int = 0) -> list[Batch]:
        """The first ``n`` batches of epoch 0 (every batch of it when ``n`` is 0)."""
        if n:
            return [b for _, b in itertools.islice(self.iterate(), n)]
        batches = []
        self.first_epoch_examples = 0
        for chunk in range(self.n_chunks):
            current = self.chunk(0, chunk)
            self.first_epoch_examples += len(current.examples)
            batches += [collate([current.examples[j] for j in idx], bucket,
                                self.batch_size(bucket)) for bucket, idx in current.plan]
        return batches

    def close(self) -> None:
        """Stop the background build and drop the chunks held."""
        self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._chunks.clear()
        self._next = None
