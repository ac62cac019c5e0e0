"""The loops with small models trained here (small vocabularies and block sizes):
batching, masking of finished rows, seeds, EOS rules, compile-once, bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from bark_kedro.generation import (
    GenerationConfig,
    generate_coarse,
    generate_fine,
    generate_semantic,
)
from bark_kedro.generation._common import N_CACHE_LENGTHS
from bark_kedro.generation.coarse import N_PROMPT_BUCKETS, _coarse_prefill, _coarse_steps
from bark_kedro.generation.fine import _fine_window
from bark_kedro.generation.sampling import row_keys
from bark_kedro.generation.semantic import _semantic_prefill, _semantic_steps
from bark_kedro.models import build_model, semantic_config
from tests.generation.reference import TINY_CONFIG, TINY_VOCAB, tiny_models

VOCAB, SMALL = TINY_VOCAB, TINY_CONFIG


@pytest.fixture(scope="module")
def models():
    return tiny_models()


def _texts(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, VOCAB.text_vocab_size, rng.integers(3, 50)) for _ in range(n)]


def _set_eos_logit(model, value: float) -> None:
    """Make every logit 0 but the EOS one, ``value``: the final LayerNorm outputs its bias
    (scale 0, bias e_0) and the head reads only feature 0, into the EOS column."""
    model.ln_f.scale[...] = jnp.zeros_like(model.ln_f.scale[...])
    model.ln_f.bias[...] = jnp.zeros_like(model.ln_f.bias[...]).at[0].set(1.0)
    kernel = jnp.zeros_like(model.lm_head.kernel[...])
    model.lm_head.kernel[...] = kernel.at[0, VOCAB.semantic_pad_token].set(value)


@pytest.mark.slow
def test_semantic_batch_rows_equal_single_rows_and_seeds_reproduce(models):
    texts = _texts(3)
    history = [None, np.arange(50) % 60, np.arange(5)]
    config = SMALL.replace(top_p=0.9, semantic_temperature=1.0)
    batch = generate_semantic(models["semantic"], texts, history, config, key=11)
    keys = row_keys(jax.random.key(11), 3)
    for i in range(3):
        single = generate_semantic(models["semantic"], texts[i:i + 1], history[i:i + 1], config,
                                   key=keys[i:i + 1])
        np.testing.assert_array_equal(single[0], batch[i])
    again = generate_semantic(models["semantic"], texts, history, config, key=11)
    for a, b in zip(batch, again, strict=True):
        np.testing.assert_array_equal(a, b)
    other = generate_semantic(models["semantic"], texts, history, config, key=12)
    assert any(len(a) != len(b) or (a != b).any() for a, b in zip(batch, other, strict=True))
    assert all(len(b) <= 40 and b.max() < VOCAB.semantic_vocab_size for b in batch)


@pytest.mark.slow
def test_semantic_eos_rules():
    model = build_model(semantic_config("test", VOCAB, bias=True), seed=3)
    texts = _texts(2, seed=1)
    _set_eos_logit(model, 0.0)  # uniform over 60 ids + EOS: p(EOS) = 1/61
    stops = generate_semantic(model, texts, config=SMALL.replace(min_eos_p=0.01), key=0)
    assert [len(s) for s in stops] == [0, 0]  # p(EOS) >= min_eos_p at once
    never = generate_semantic(model, texts, config=SMALL.replace(allow_early_stop=False), key=0)
    assert [len(s) for s in never] == [40, 40]
    _set_eos_logit(model, 100.0)  # EOS sampled at once, whatever min_eos_p says
    assert [len(s) for s in generate_semantic(model, texts, config=SMALL.replace(
        min_eos_p=None), key=0)] == [0, 0]


@pytest.mark.slow
def test_each_loop_compiles_once(models):
    config = SMALL.replace(top_k=1)
    generate_semantic(models["semantic"], _texts(2), config=config, key=0)
    semantic_sizes = (_semantic_prefill._cache_size(), _semantic_steps._cache_size())
    sizes = (_coarse_prefill._cache_size(), _coarse_steps._cache_size(), _fine_window._cache_size())
    semantic = generate_semantic(models["semantic"], _texts(2, seed=5), config=config, key=1)
    semantic = [np.resize(s, 70) for s in semantic]  # several coarse windows
    coarse = generate_coarse(models["coarse"], semantic, config=config, key=0)
    coarse2 = generate_coarse(models["coarse"], [s[:30] for s in semantic], config=config, key=0)
    fine = generate_fine(models["fine"], coarse, config=config, key=0)
    generate_fine(models["fine"], coarse2, config=config, key=0)
    # same batch size, other texts: no retrace
    assert (_semantic_prefill._cache_size(), _semantic_steps._cache_size()) == semantic_sizes
    # a coarse prefill per prompt-length bucket, a decode loop per cache length: not one per
    # window (11 here)
    assert _coarse_prefill._cache_size() <= sizes[0] + N_PROMPT_BUCKETS + 1
    assert _coarse_steps._cache_size() <= sizes[1] + N_CACHE_LENGTHS
    assert _fine_window._cache_size() <= sizes[2] + 1
    assert [c.shape for c in coarse] == [(2, 105)] * 2  # floor(70 * 75 / 49.9)
    assert [f.shape for f in fine] == [(8, 105)] * 2
    for c, f in zip(coarse, fine, strict=True):
        np.testing.assert_array_equal(f[:2], c)


@pytest.mark.slow
def test_coarse_and_fine_batch_rows_equal_single_rows(models):
    rng = np.random.default_rng(2)
    semantic = [rng.integers(0, 60, n) for n in (10, 47)]
    history = [(rng.integers(0, 60, 30), rng.integers(0, 1024, (2, 45))), None]
    config = SMALL.replace(coarse_temperature=1.0, fine_temperature=0.8)
    keys = row_keys(jax.random.key(4), 2)
    coarse = generate_coarse(models["coarse"], semantic, history, config, keys)
    fine = generate_fine(models["fine"], coarse, [rng.integers(0, 1024, (8, 50)), None],
                         config, keys)
    assert [c.shape[1] for c in coarse] == [15, 70]
    for i in range(2):
        alone = generate_coarse(models["coarse"], semantic[i:i + 1], history[i:i + 1], config,
                                keys[i:i + 1])
        np.testing.assert_array_equal(alone[0], coarse[i])
    assert all(f.shape == (8, c.shape[1]) for f, c in zip(fine, coarse, strict=True))


def test_windows_must_fit_the_models(models):
    with pytest.raises(ValueError, match="semantic_window \\+ max_coarse_history"):
        generate_coarse(models["coarse"], [np.arange(10)], config=GenerationConfig())
    with pytest.raises(ValueError, match="fine_window=1024 exceeds"):
        generate_fine(models["fine"], [np.zeros((2, 5), int)], config=GenerationConfig())
    with pytest.raises(ValueError, match="max_semantic_tokens=100 exceeds"):
        generate_semantic(models["semantic"], [[1, 2]], config=SMALL.replace(
            max_semantic_tokens=100))
    with pytest.raises(ValueError, match="expected the coarse GPT"):
        generate_coarse(models["semantic"], [np.arange(10)], config=SMALL)


@pytest.mark.parametrize(("call", "match"), [
    (lambda m: generate_semantic(m["semantic"], [[1, 30]], config=SMALL), "text_ids must lie in"),
    (lambda m: generate_semantic(m["semantic"], [], config=SMALL), "non-empty sequence"),
    (lambda m: generate_semantic(m["semantic"], [[1]], [None, None], config=SMALL),
     "history must be None or a sequence of 1"),
    (lambda m: generate_coarse(m["coarse"], [np.arange(10)], [(np.arange(10), np.zeros(
        (2, 40), int))], config=SMALL), "do not match its 10 semantic ids"),
    (lambda m: generate_coarse(m["coarse"], [np.array([1.5])], config=SMALL), "integer ids"),
    (lambda m: generate_fine(m["fine"], [np.zeros((2, 5), int), np.zeros((3, 5), int)],
                             config=SMALL), "same number of codebooks"),
    (lambda m: generate_fine(m["fine"], [np.zeros((2, 5), int)], [np.zeros((7, 5), int)],
                             config=SMALL), "history fine codes must have 8"),
])
def test_bad_input_is_named(models, call, match):
    with pytest.raises(ValueError, match=match):
        call(models)


@pytest.mark.slow
def test_kv_cache_rows_with_their_own_index(models):
    """A right-padded batch with per-row indices decodes each row as if it were alone."""
    model = models["coarse"]
    rng = np.random.default_rng(0)
    prompts = [rng.integers(0, VOCAB.coarse_vocab_size, n) for n in (5, 11)]
    padded = np.zeros((2, 11), np.int32)
    for i, p in enumerate(prompts):
        padded[i, : len(p)] = p
    nxt = jnp.asarray([[3], [7]], jnp.int32)
    decode = nnx.jit(lambda m, x, c: m.decode(x, c))
    _, cache = decode(model, jnp.asarray(padded), model.init_cache(2, max_len=16))
    logits, _ = decode(model, nxt, cache.with_index(jnp.asarray([5, 11])))
    for i, p in enumerate(prompts):
        full = nnx.jit(lambda m, x: m(x))(model, jnp.asarray(np.append(p, nxt[i, 0]))[None])
        np.testing.assert_allclose(logits[i, 0], full[0, -1], atol=1e-5)
