"""Token tables -> stage examples, and the padding-aware batch plan."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from bark_kedro.models import coarse_config, fine_config, semantic_config
from bark_kedro.training import StageDataConfig, build_stage_examples, stage_vocab
from bark_kedro.training.batching import BucketBatcher, best_bucket_lengths
from bark_kedro.training.examples import make_batcher
from bark_kedro.training.layouts import coarse_examples, semantic_example
from tests.training.synthetic import token_tables

VOCAB = stage_vocab(40, 64, 1024)
TABLES = token_tables(VOCAB, n_utterances=20, n_speakers=2)
CONFIGS = {"semantic": semantic_config("test", VOCAB), "coarse": coarse_config("test", VOCAB),
           "fine": fine_config("test", VOCAB)}


def _build(stage, tables=TABLES, split="train", data=None, seed=0):
    return build_stage_examples(stage, *tables, VOCAB, data or StageDataConfig(),
                                CONFIGS[stage], split, seed)


def test_semantic_examples_follow_the_layout_with_same_speaker_history():
    text, sem, _ = TABLES
    examples, counts = _build("semantic", data=StageDataConfig(history_drop_prob=0.0))
    train = text[text["split"] == "train"].reset_index(drop=True)
    assert counts == {"utterances": 16, "used_utterances": 16, "examples": 16,
                      "missing_tokens": 0}
    sem_of = dict(zip(sem["utterance_id"], sem["semantic_ids"], strict=True))
    previous: dict = {}
    for row, example in zip(train.itertuples(), examples, strict=True):
        expected = semantic_example(row.text_ids, sem_of[row.utterance_id],
                                    previous.get(row.speaker), VOCAB, context_len=32,
                                    block_size=128)
        np.testing.assert_array_equal(example.inputs, expected.inputs)
        np.testing.assert_array_equal(example.targets, expected.targets)
        previous[row.speaker] = sem_of[row.utterance_id]


def test_left_out_utterances_are_counted_by_reason():
    text, sem, codec = (t.copy() for t in TABLES)
    sem.at[0, "semantic_ids"] = np.zeros(200, np.int32)  # more than 128 - 32 - 1 ids
    text.at[1, "text_ids"] = np.zeros(40, np.int32)  # longer than the 32-token text block
    sem = sem.drop(index=2)  # not tokenized
    examples, counts = _build("semantic", (text, sem, codec))
    assert counts["semantic_too_long"] == 1 and counts["text_too_long"] == 1
    assert counts["missing_tokens"] == 1 and counts["used_utterances"] == 13
    assert counts["examples"] == len(examples) == 13
    _, counts = _build("semantic", (text, sem, codec), data=StageDataConfig(truncate_text=True))
    assert "text_too_long" not in counts and counts["used_utterances"] == 14


def test_coarse_and_fine_examples_per_utterance():
    text, sem, codec = TABLES
    data = StageDataConfig(history_drop_prob=1.0).resolved(128)
    examples, counts = _build("coarse", data=data)
    row_sem = sem.iloc[0]
    codes = np.asarray(codec.iloc[0]["codes"]).reshape(8, -1)
    first = coarse_examples(row_sem["semantic_ids"], codes, VOCAB, block_size=128,
                            semantic_window=data.semantic_window,
                            max_coarse_history=data.max_coarse_history,
                            sliding_window_len=data.sliding_window_len)
    for got, want in zip(examples, first, strict=False):
        np.testing.assert_array_equal(got.inputs, want.inputs)
    assert counts["used_utterances"] == 16 and len(examples) >= 16
    fine_all, _ = _build("fine", split="validation")
    fine_random, counts = _build("fine", split="validation",
                                 data=StageDataConfig(codebooks="random"))
    assert counts["used_utterances"] == 4
    assert len(fine_all) == 6 * len(fine_random)
    assert {int(e.codebook) for e in fine_all} == set(range(2, 8))
    assert all(e.inputs.shape == (128, 8) for e in fine_all)


def test_bad_tables_are_named():
    text, sem, codec = TABLES
    with pytest.raises(ValueError, match=r"semantic_tokens lacks columns \['semantic_ids'\]"):
        _build("semantic", (text, sem.drop(columns="semantic_ids"), codec))
    with pytest.raises(ValueError, match="the coarse stage needs codec_tokens"):
        _build("coarse", (text, sem, None))
    bad = sem.copy()
    bad.at[3, "semantic_ids"] = np.asarray([5, 99], np.int32)
    with pytest.raises(ValueError, match=r"utterance 'utt0003'.*semantic_ids must lie in \[0, 64\)"):
        _build("semantic", (text, bad, codec))
    short = codec.copy()
    short.at[0, "n_frames"] = 3
    with pytest.raises(ValueError, match="'utt0000': .* do not fill"):
        _build("fine", (text, sem, short))
    with pytest.raises(ValueError, match="split must be one of"):
        _build("fine", split="test")
    with pytest.raises(ValueError, match="repeats utterance ids"):
        _build("fine", (text, sem, pd.concat([codec, codec.iloc[:1]])))


def test_best_bucket_lengths_minimise_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(20, 200, 300)

    def padding(buckets):
        b = np.asarray(buckets)
        return int((b[np.searchsorted(b, lengths)] - lengths).sum())

    best = best_bucket_lengths(lengths, max_buckets=3, multiple=8)
    assert len(best) == 3 and best[-1] == 200 and all(b % 8 == 0 for b in best)
    candidates = range(24, 200, 8)
    brute = min(padding([a, b, 200]) for a, b in itertools.combinations(candidates, 2))
    assert padding(best) == brute
    assert padding(best) < padding([64, 128, 200])
    assert best_bucket_lengths([5, 5, 5], 4, 8) == [8]
    assert best_bucket_lengths([250], 2, 8, max_length=250) == [250]


def test_carried_remainders_and_repeats_leave_no_empty_rows():
    lengths = np.random.default_rng(1).integers(10, 120, 37)
    common = dict(buckets=[32, 64, 96, 120], tokens_per_batch=480, seed=3)
    plain = BucketBatcher(lengths, **common)
    carried = BucketBatcher(lengths, carry_remainder=True, **common)
    filled = BucketBatcher(lengths, carry_remainder=True, fill_with_repeats=True, **common)
    for batcher in (carried, filled):
        plan = batcher.plan(0)
        seen = np.concatenate([idx for _, idx in plan])
        assert set(seen.tolist()) == set(range(37))
        assert all((lengths[idx] <= bucket).all() for bucket, idx in plan)
    short = [b for b, idx in carried.plan(0) if len(idx) < carried.batch_size(b)]
    assert len(short) <= 1 and short[0] == 120
    assert all(len(idx) == filled.batch_size(b) for b, idx in filled.plan(0))
    assert filled.padding_fraction(0) < min(plain.padding_fraction(0),
                                            carried.padding_fraction(0))
    with pytest.raises(ValueError, match="fill_with_repeats needs carry_remainder"):
        BucketBatcher(lengths, fill_with_repeats=True, **common)


def test_stage_batcher_keeps_fine_codebooks_apart_and_counts_lengths():
    examples, _ = _build("fine")
    batcher = make_batcher(examples, StageDataConfig(), tokens_per_batch=512, batch_multiple=2)
    for _, batch in itertools.islice(batcher.iterate(examples), len(batcher.plan(0))):
        assert len(set(batch["codebook"].tolist())) == 1
        assert batch["inputs"].shape == (4, 128, 8)
        assert set(batch["lengths"].tolist()) <= {0, 128}
