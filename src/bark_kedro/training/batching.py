"""Length-bucketed batches of fixed shapes for jit-compiled training (numpy only).

Examples are sorted into a few padded lengths (``bucket_lengths``), each bucket gets a
batch size from a token budget, so a training step compiles once per bucket. Epochs are
shuffled deterministically from ``(seed, epoch)`` and iteration resumes from a
:class:`DataPosition`. A batch is a dict of numpy arrays with a leading batch dimension:
``inputs``, ``targets``, ``loss_mask`` and, when the examples have one, ``codebook``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from bark_kedro.training.layouts import Example

Batch = dict[str, np.ndarray]  # host arrays here; the steps get device arrays of the same keys


def bucket_lengths(max_length: int, multiple: int = 64, min_length: int | None = None) -> list[int]:
    """Padded lengths ``multiple, 2*multiple, ...`` up to ``max_length`` (always included)."""
    if max_length < 1 or multiple < 1:
        raise ValueError(f"max_length and multiple must be >= 1, got {max_length}, {multiple}")
    start = multiple if min_length is None else -(-min_length // multiple) * multiple
    return sorted({*range(start, max_length, multiple), max_length})


@dataclass(frozen=True)
class DataPosition:
    """Where iteration stands: ``index`` batches of epoch ``epoch`` (of its chunk ``chunk``
    when the input is streamed a chunk at a time) have been consumed."""

    epoch: int = 0
    index: int = 0
    chunk: int = 0


class BucketBatcher:
    """Plans fixed-shape batches over examples of known lengths (and groups).

    ``lengths[i]``: model positions of example ``i``; ``groups[i]``: examples of different
    groups never share a batch (e.g. the fine model's predicted codebook). A bucket of
    padded length ``L`` gets ``tokens_per_batch // L`` rows, rounded down to a multiple of
    ``batch_multiple`` (the data-parallel width; at least one multiple) and capped by
    ``max_batch_size``. A bucket's last, short batch is filled with empty rows (loss mask
    off) so every batch of a bucket has one shape, or dropped with ``drop_remainder``.
    With ``carry_remainder`` the examples left over from a bucket's full batches move up
    to the next bucket of their group instead, so only the largest bucket of a group has
    a short batch (fewer empty rows on small data sets); ``fill_with_repeats`` then fills
    that batch's free rows with randomly drawn examples of its bucket instead of empty
    rows (for training: no padded rows at all, a few examples seen twice per epoch).
    """

    def __init__(
        self,
        lengths: Sequence[int],
        *,
        buckets: Sequence[int],
        tokens_per_batch: int,
        groups: Sequence[int] | None = None,
        seed: int = 0,
        batch_multiple: int = 1,
        max_batch_size: int | None = None,
        drop_remainder: bool = False,
        carry_remainder: bool = False,
        fill_with_repeats: bool = False,
        blocks: Sequence[int] | None = None,
        n_blocks: int = 1,
    ):
        self.lengths = np.asarray(lengths, np.int64)
        self.buckets = np.asarray(sorted(set(int(b) for b in buckets)), np.int64)
        if self.lengths.ndim != 1 or len(self.lengths) == 0:
            raise ValueError("lengths must be a non-empty 1-D sequence")
        if len(self.buckets) == 0 or self.buckets[0] < 1:
            raise ValueError(f"buckets must be positive lengths, got {list(buckets)}")
        if self.lengths.min() < 1 or self.lengths.max() > self.buckets[-1]:
            raise ValueError(f"lengths must lie in [1, {self.buckets[-1]}] (largest bucket), got "
                             f"[{self.lengths.min()}, {self.lengths.max()}]")
        if batch_multiple < 1 or tokens_per_batch < 1:
            raise ValueError("batch_multiple and tokens_per_batch must be >= 1")
        self.groups = np.zeros(len(self.lengths), np.int64) if groups is None else np.asarray(
            groups, np.int64)
        if self.groups.shape != self.lengths.shape:
            raise ValueError(f"groups must match lengths, got {self.groups.shape} and "
                             f"{self.lengths.shape}")
        self.tokens_per_batch, self.batch_multiple = tokens_per_batch, batch_multiple
        self.max_batch_size, self.seed, self.drop_remainder = max_batch_size, seed, drop_remainder
        self.carry_remainder, self.fill_with_repeats = carry_remainder, fill_with_repeats
        if fill_with_repeats and not carry_remainder:
            raise ValueError("fill_with_repeats needs carry_remainder")
        if n_blocks < 1 or batch_multiple % n_blocks:
            raise ValueError(f"n_blocks ({n_blocks}) must divide batch_multiple "
                             f"({batch_multiple})")
        self.n_blocks = n_blocks
        self.blocks = (np.zeros(len(self.lengths), np.int64) if blocks is None
                       else np.asarray(blocks, np.int64))
        if self.blocks.shape != self.lengths.shape or not (
                0 <= self.blocks.min() and self.blocks.max() < n_blocks):
            raise ValueError(f"blocks must match lengths and lie in [0, {n_blocks})")
        if n_blocks > 1 and not carry_remainder:
            raise ValueError("blocks need carry_remainder")
        self.bucket_of = self.buckets[np.searchsorted(self.buckets, self.lengths)]

    def batch_size(self, bucket: int) -> int:
        """Rows of a batch of padded length ``bucket``."""
        rows = self.tokens_per_batch // bucket
        if self.max_batch_size is not None:
            rows = min(rows, self.max_batch_size)
        return max(self.batch_multiple, rows // self.batch_multiple * self.batch_multiple)

    def plan(self, epoch: int) -> list[tuple[int, np.ndarray]]:
        """The batches of ``epoch``, in order: ``(padded length, example indices)``."""
        rng = np.random.default_rng([self.seed, epoch])
        if self.carry_remainder:
            batches = self._plan_carrying(rng)
            return [batches[i] for i in rng.permutation(len(batches))]
        batches = []
        for key in sorted(set(zip(self.bucket_of.tolist(), self.groups.tolist(), strict=True))):
            bucket = key[0]
            members = np.flatnonzero((self.bucket_of == bucket) & (self.groups == key[1]))
            members = rng.permutation(members)
            size = self.batch_size(bucket)
            for i in range(0, len(members), size):
                chunk = members[i:i + size]
                if len(chunk) == size or not self.drop_remainder:
                    batches.append((bucket, chunk))
        order = rng.permutation(len(batches))
        return [batches[i] for i in order]

    def _plan_carrying(self, rng: np.random.Generator) -> list[tuple[int, np.ndarray]]:
        batches = []
        n_blocks = self.n_blocks
        for group in np.unique(self.groups):
            in_group = self.groups == group
            used = [b for b in self.buckets.tolist() if (in_group & (self.bucket_of == b)).any()]
            carry = [np.zeros(0, np.int64)] * n_blocks
            for n, bucket in enumerate(used):
                in_bucket = in_group & (self.bucket_of == bucket)
                members = [np.concatenate([carry[b], rng.permutation(
                    np.flatnonzero(in_bucket & (self.blocks == b)))]) for b in range(n_blocks)]
                per = self.batch_size(bucket) // n_blocks
                last = n == len(used) - 1
                n_full = min(len(m) // per for m in members)
                if last and not self.drop_remainder:
                    n_full = max(-(-len(m) // per) for m in members)
                for i in range(n_full):
                    parts = [self._block_rows(m[i * per:(i + 1) * per], per, last, rng,
                                              in_group & (self.blocks == b), bucket)
                             for b, m in enumerate(members)]
                    rows = np.concatenate(parts)
                    batches.append((bucket, rows if n_blocks > 1 else rows[rows >= 0]))
                carry = [m[n_full * per:] for m in members]
        return batches

    def _block_rows(self, rows: np.ndarray, per: int, last: bool, rng: np.random.Generator,
                    pool_of: np.ndarray, bucket: int) -> np.ndarray:
        """``per`` rows of one block: ``rows``, then repeats of its bucket's examples (the
        last batches, with ``fill_with_repeats``) or empty rows (``-1``)."""
        if len(rows) == per:
            return rows
        if last and self.fill_with_repeats:
            pool = np.flatnonzero(pool_of & (self.bucket_of == bucket))
            if not len(pool):
                pool = np.flatnonzero(pool_of & (self.bucket_of <= bucket))
            if len(pool):
                return np.concatenate([rows, rng.choice(pool, per - len(rows))])
        return np.concatenate([rows, np.full(per - len(rows), -1, np.int64)])

    def padding_fraction(self, epoch: int = 0) -> float:
        """Fraction of the epoch's batch positions (rows x padded length) that are padding."""
        plan = self.plan(epoch)
        total = sum(self.batch_size(b) * b for b, _ in plan)
        real = sum(int(self.lengths[idx[idx >= 0]].sum()) for _, idx in plan)
        return 1.0 - real / total if total else 0.0

    def iterate(
        self, examples: Sequence[Example], start: DataPosition | None = None
    ) -> Iterator[tuple[DataPosition, Batch]]:
        """Batches from ``start`` on, forever; each with the position *after* it (save that
        to resume)."""
        if len(examples) != len(self.lengths):
            raise ValueError(f"got {len(examples)} examples for {len(self.lengths)} lengths")
        start = start or DataPosition()
        epoch, index = start.epoch, start.index
        while True:
            plan = self.plan(epoch)
            if index > len(plan):
                raise ValueError(f"{start} is past the {len(plan)} batches of epoch {epoch}")
            for i in range(index, len(plan)):
                bucket, idx = plan[i]
                batch = collate([examples[j] if j >= 0 else None for j in idx], bucket,
                                self.batch_size(bucket))
                yield DataPosition(epoch, i + 1), batch
            epoch, index = epoch + 1, 0


def collate(examples: Sequence[Example | None], length: int, batch_size: int | None = None,
            template: Example | None = None) -> Batch:
    """Stack examples padded to ``length`` model positions; ``None`` entries and the rows
    up to ``batch_size`` are empty rows (``template``, or the first example, gives their
    shapes; a batch's examples share a group).

    Inputs are padded with each example's ``pad_id`` (the semantic inputs stay
    ``context_len`` longer than the targets), targets with 0, the loss mask with False;
    ``lengths`` holds each row's model positions (0 for empty rows).
    """
    first = next((e for e in examples if e is not None), template)
    if first is None:
        raise ValueError("collate needs at least one example (or a template)")
    rows = len(examples) if batch_size is None else batch_size
    if rows < len(examples):
        raise ValueError(f"batch_size {rows} is smaller than the {len(examples)} examples")
    extra = first.inputs.shape[0] - first.length
    inputs = np.full((rows, length + extra, *first.inputs.shape[1:]), first.pad_id,
                     first.inputs.dtype)
    targets = np.zeros((rows, length), first.targets.dtype)
    mask = np.zeros((rows, length), bool)
    lengths = np.zeros(rows, np.int32)
    codebook = None
    if first.codebook is not None:
        shape = (rows,) if first.codebook.ndim == 0 else (rows, length)
        codebook = np.full(shape, first.group if first.codebook.ndim == 0 else 0, np.int32)
    for r, ex in enumerate(examples):
        if ex is None:
            continue
        n = ex.length
        if n > length or ex.inputs.shape[0] - n != extra:
            raise ValueError(f"example {r} ({n} positions, inputs {ex.inputs.shape}) does not "
                             f"fit length {length} with {extra} extra input positions")
        inputs[r, :n + extra] = ex.inputs
        targets[r, :n] = ex.targets
        mask[r, :n] = ex.loss_mask
        lengths[r] = n
        if codebook is not None and codebook.ndim == 1:
            if ex.group != first.group:
                raise ValueError(f"example {r} predicts codebook {ex.group}, example 0 {first.group}")
            codebook[r] = ex.codebook
        elif codebook is not None:
            codebook[r, :n] = ex.codebook
    batch = {"inputs": inputs, "targets": targets, "loss_mask": mask, "lengths": lengths}
    if codebook is not None:
        batch["codebook"] = codebook
    return batch


def naive_padding_fraction(lengths: Sequence[int], max_length: int, batch_size: int = 1) -> float:
    """Padding fraction of padding every example to ``max_length`` in batches of
    ``batch_size`` (the last one filled with empty rows), to compare with bucketing."""
    lengths = np.asarray(lengths, np.int64)
    if len(lengths) == 0 or lengths.max() > max_length:
        raise ValueError(f"lengths must be non-empty and <= max_length {max_length}")
    rows = -(-len(lengths) // batch_size) * batch_size
    return 1.0 - float(lengths.sum()) / (rows * max_length)


def best_bucket_lengths(
    lengths: Sequence[int], max_buckets: int, multiple: int = 8, max_length: int | None = None
) -> list[int]:
    """At most ``max_buckets`` padded lengths, multiples of ``multiple`` (the largest at
    least ``max(lengths)``, capped by ``max_length``), placed to minimise the total padding
    of ``lengths`` (exact dynamic programme over the distinct rounded lengths)."""
    lengths = np.asarray(lengths, np.int64)
    if lengths.ndim != 1 or len(lengths) == 0 or lengths.min() < 1:
        raise ValueError("lengths must be a non-empty 1-D sequence of positive ints")
    if max_buckets < 1 or multiple < 1:
        raise ValueError(f"max_buckets and multiple must be >= 1, got {max_buckets}, {multiple}")
    rounded = -(-lengths // multiple) * multiple
    if max_length is not None:
        if lengths.max() > max_length:
            raise ValueError(f"lengths exceed max_length {max_length}: {lengths.max()}")
        rounded = np.minimum(rounded, max_length)
    values, counts = np.unique(rounded, return_counts=True)
    cum = np.concatenate([[0], np.cumsum(counts)])  # examples at candidates < j: cum[j]
    m, k_max = len(values), min(max_buckets, len(values))
    cost = np.full((k_max + 1, m), np.inf)  # cost[k, j]: k buckets, the last at values[j]
    back = np.zeros((k_max + 1, m), np.int64)
    cost[1] = values * cum[1:]
    for k in range(2, k_max + 1):
        for j in range(k - 1, m):
            i = np.arange(k - 2, j)  # previous bucket at values[i]
            options = cost[k - 1, i] + values[j] * (cum[j + 1] - cum[i + 1])
            best = int(np.argmin(options))
            cost[k, j], back[k, j] = options[best], i[best]
    k = int(np.argmin(cost[1:, m - 1])) + 1
    out, j = [], m - 1
    while k >= 1:
        out.append(int(values[j]))
        j, k = back[k, j], k - 1
    return sorted(out)
