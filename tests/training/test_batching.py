"""Bucketed, resumable, deterministic batching."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bark_kedro.training.batching import (
    BucketBatcher,
    DataPosition,
    bucket_lengths,
    collate,
    naive_padding_fraction,
)
from bark_kedro.training.layouts import Example, coarse_examples, fine_examples, semantic_example


def _examples(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [Example(rng.integers(0, 50, n).astype(np.int32), rng.integers(0, 50, n).astype(np.int32),
                    rng.random(n) < 0.8, None, 99) for n in lengths]


def _batcher(lengths, **kwargs):
    kwargs = {"buckets": bucket_lengths(256, 64), "tokens_per_batch": 512, **kwargs}
    return BucketBatcher(lengths, **kwargs)


LENGTHS = np.random.default_rng(7).integers(5, 257, 60)


def test_bucket_lengths():
    assert bucket_lengths(256, 64) == [64, 128, 192, 256]
    assert bucket_lengths(1000, 256) == [256, 512, 768, 1000]
    assert bucket_lengths(1024, 256, min_length=300) == [512, 768, 1024]
    with pytest.raises(ValueError, match="max_length and multiple"):
        bucket_lengths(0)


def test_plan_covers_each_example_once_in_fixed_shapes():
    batcher = _batcher(LENGTHS, batch_multiple=2)
    plan = batcher.plan(0)
    seen = np.concatenate([idx for _, idx in plan])
    assert sorted(seen.tolist()) == list(range(len(LENGTHS)))
    for bucket, idx in plan:
        assert (LENGTHS[idx] <= bucket).all()
        assert bucket == 64 or (LENGTHS[idx] > bucket - 64).all()  # smallest bucket that fits
        size = batcher.batch_size(bucket)
        assert size % 2 == 0 and len(idx) <= size and size == max(2, 512 // bucket // 2 * 2)


def test_plan_is_deterministic_per_seed_and_epoch():
    def order(seed, epoch):
        return [idx.tolist() for _, idx in _batcher(LENGTHS, seed=seed).plan(epoch)]

    assert order(0, 0) == order(0, 0)
    assert order(0, 0) != order(0, 1) and order(0, 0) != order(1, 0)


def test_iterate_resumes_where_it_stopped():
    examples = _examples(LENGTHS)
    batcher = _batcher(LENGTHS)
    n_epoch = len(batcher.plan(0))
    run = list(itertools.islice(batcher.iterate(examples), n_epoch + 5))
    assert run[n_epoch - 1][0] == DataPosition(0, n_epoch) and run[n_epoch][0] == DataPosition(1, 1)
    resume_at = n_epoch - 3
    resumed = list(itertools.islice(batcher.iterate(examples, run[resume_at - 1][0]), 8))
    for (pos_a, a), (pos_b, b) in zip(run[resume_at:], resumed, strict=True):
        assert pos_a == pos_b and a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    with pytest.raises(ValueError, match="past the"):
        next(batcher.iterate(examples, DataPosition(0, n_epoch + 1)))


def test_batches_hold_the_examples_padded():
    examples = _examples(LENGTHS)
    batcher = _batcher(LENGTHS)
    for (bucket, idx), (_, batch) in zip(batcher.plan(0), batcher.iterate(examples), strict=False):
        rows = batcher.batch_size(bucket)
        assert batch["inputs"].shape == batch["targets"].shape == (rows, bucket)
        for r, i in enumerate(idx):
            n = LENGTHS[i]
            np.testing.assert_array_equal(batch["inputs"][r, :n], examples[i].inputs)
            np.testing.assert_array_equal(batch["loss_mask"][r, :n], examples[i].loss_mask)
            assert (batch["inputs"][r, n:] == 99).all() and not batch["loss_mask"][r, n:].any()
        assert not batch["loss_mask"][len(idx):].any()  # filler rows carry no loss


def test_padding_fraction_beats_naive_padding():
    batcher = _batcher(LENGTHS)
    total = real = 0
    for bucket, idx in batcher.plan(3):
        total += batcher.batch_size(bucket) * bucket
        real += LENGTHS[idx].sum()
    assert batcher.padding_fraction(3) == pytest.approx(1 - real / total)
    naive = naive_padding_fraction(LENGTHS, 256, batch_size=2)
    assert naive == pytest.approx(1 - LENGTHS.sum() / (60 * 256))
    assert batcher.padding_fraction(3) < naive
    assert _batcher([64] * 8).padding_fraction() == 0.0


def test_drop_remainder_and_errors():
    batcher = _batcher(LENGTHS, drop_remainder=True)
    assert all(len(idx) == batcher.batch_size(b) for b, idx in batcher.plan(0))
    with pytest.raises(ValueError, match="largest bucket"):
        _batcher([300])
    with pytest.raises(ValueError, match="groups must match"):
        _batcher(LENGTHS, groups=[0, 1])
    with pytest.raises(ValueError, match="examples for"):
        next(_batcher(LENGTHS).iterate(_examples(LENGTHS[:3])))


def test_semantic_inputs_stay_longer_than_targets():
    sem = np.arange(40) % 7
    examples = [semantic_example(np.arange(3), sem[:n], None, context_len=8, block_size=64)
                for n in (10, 30)]
    batch = collate(examples, 48, batch_size=3)
    assert batch["inputs"].shape == (3, 56) and batch["targets"].shape == (3, 48)
    np.testing.assert_array_equal(batch["inputs"][1, :47], examples[1].inputs)
    assert "codebook" not in batch


def test_coarse_and_fine_carry_their_codebook():
    rng = np.random.default_rng(0)
    coarse = coarse_examples(rng.integers(0, 100, 120), rng.integers(0, 1024, (2, 181)))
    batch = collate(coarse, 1024)
    assert batch["codebook"].shape == (len(coarse), 1024)
    np.testing.assert_array_equal(batch["codebook"][0, :coarse[0].length], coarse[0].codebook)

    fine = fine_examples(rng.integers(0, 1024, (8, 100)), window=64)
    batcher = BucketBatcher([e.length for e in fine], groups=[e.group for e in fine],
                            buckets=[64], tokens_per_batch=128)
    for _, batch in itertools.islice(batcher.iterate(fine), len(batcher.plan(0))):
        assert batch["inputs"].shape == (2, 64, 8) and len(set(batch["codebook"])) == 1
    with pytest.raises(ValueError, match="predicts codebook"):
        collate(fine[:2], 64)
