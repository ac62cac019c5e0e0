"""Behaviour of the Flax GPT: causality, merged context, KV cache, dropout, jit."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from bark_kedro.models import GPT, KVCache, build_model, coarse_config, semantic_config
from tests.models.reference_models import VOCAB, random_ids

forward = nnx.jit(
    lambda m, idx, merge=False, rngs=None: m(idx, merge_context=merge, rngs=rngs), static_argnums=2
)


@pytest.fixture(scope="module")
def model() -> GPT:
    return build_model(semantic_config("test", VOCAB, n_head=4), seed=0)


def test_logits_at_every_position_and_causal(model):
    idx = random_ids((2, 20), VOCAB.semantic_input_vocab_size)
    logits = forward(model, jnp.asarray(idx))
    assert logits.shape == (2, 20, VOCAB.semantic_output_vocab_size)
    assert logits.dtype == jnp.float32
    changed = idx.copy()
    changed[:, 12:] = (changed[:, 12:] + 1) % VOCAB.semantic_input_vocab_size
    other = forward(model, jnp.asarray(changed))
    np.testing.assert_allclose(other[:, :12], logits[:, :12], atol=1e-6)
    assert np.abs(np.asarray(other[:, 12:] - logits[:, 12:])).max() > 1e-4


def test_merged_context_sums_the_first_two_blocks(model):
    n = model.config.merge_context_len
    idx = random_ids((1, 2 * n + 5), VOCAB.semantic_input_vocab_size)
    merged = forward(model, jnp.asarray(idx), True)
    assert merged.shape == (1, n + 5, VOCAB.semantic_output_vocab_size)
    swapped = np.concatenate([idx[:, n : 2 * n], idx[:, :n], idx[:, 2 * n :]], axis=1)
    np.testing.assert_allclose(forward(model, jnp.asarray(swapped), True), merged, atol=1e-5)
    with pytest.raises(ValueError, match="merge_context"):
        model(jnp.asarray(idx[:, : 2 * n]), merge_context=True)


@pytest.mark.slow
@pytest.mark.parametrize("merge", [False, True])
def test_kv_cache_token_by_token_equals_full_forward(model, merge):
    n = model.config.merge_context_len
    prompt = 2 * n + 1 if merge else 7
    idx = jnp.asarray(random_ids((2, prompt + 9), VOCAB.semantic_input_vocab_size, seed=3))
    full = forward(model, idx, merge)
    cache = model.init_cache(batch_size=2)
    step = nnx.jit(
        lambda m, tok, c, merge=False: m.decode(tok, c, merge_context=merge), static_argnums=3
    )
    first, cache = step(model, idx[:, :prompt], cache, merge)
    steps = [first]
    for t in range(prompt, idx.shape[1]):
        logits, cache = step(model, idx[:, t : t + 1], cache)
        steps.append(logits)
    np.testing.assert_allclose(jnp.concatenate(steps, axis=1), full, atol=1e-5)
    assert int(cache.index) == full.shape[1]


@pytest.mark.slow
def test_kv_cache_is_a_pytree_for_a_jitted_scan(model):
    """Greedy decoding inside lax.scan, carrying the cache, matches the eager loop."""
    graphdef, state = nnx.split(model)
    prompt = jnp.asarray(random_ids((1, 5), VOCAB.semantic_input_vocab_size, seed=4))

    @jax.jit
    def generate(state, prompt):
        m = nnx.merge(graphdef, state)
        logits, cache = m.decode(prompt, KVCache.create(m.config, 1, max_len=16))
        tok = jnp.argmax(logits[:, -1:], axis=-1)

        def body(carry, _):
            tok, cache = carry
            logits, cache = nnx.merge(graphdef, state).decode(tok, cache)
            nxt = jnp.argmax(logits, axis=-1)
            return (nxt, cache), tok[:, 0]

        (_, cache), toks = jax.lax.scan(body, (tok, cache), None, length=6)
        return toks, cache.index

    toks, index = generate(state, prompt)
    seq = jnp.concatenate([prompt, toks.T], axis=1)
    greedy = jnp.argmax(forward(model, seq[:, :-1])[:, 4:], axis=-1)  # teacher forcing
    np.testing.assert_array_equal(np.asarray(toks)[:, 0], np.asarray(greedy[0]))
    assert int(index) == 11


def test_cache_overflow_and_block_size_errors(model):
    cache = KVCache.create(model.config, 1, max_len=4)
    assert len(cache.keys) == 2 and cache.keys[0].shape == (1, 4, 4, 8)
    with pytest.raises(ValueError, match="overflow"):
        model.decode(jnp.zeros((1, 5), jnp.int32), cache)
    with pytest.raises(ValueError, match="block_size"):
        model(jnp.zeros((1, model.config.block_size + 1), jnp.int32))
    with pytest.raises(ValueError, match="max_len"):
        KVCache.create(model.config, 1, max_len=model.config.block_size + 1)


@pytest.mark.slow
def test_dropout_only_with_rngs():
    model = build_model(coarse_config("test", VOCAB, dropout=0.3), seed=1)
    idx = jnp.asarray(random_ids((2, 16), VOCAB.coarse_vocab_size))
    np.testing.assert_array_equal(forward(model, idx), forward(model, idx))
    a = forward(model, idx, False, nnx.Rngs(dropout=0))
    b = forward(model, idx, False, nnx.Rngs(dropout=1))
    assert np.abs(np.asarray(a - b)).max() > 1e-3
    np.testing.assert_array_equal(a, forward(model, idx, False, nnx.Rngs(dropout=0)))


@pytest.mark.slow
def test_bfloat16_compute_keeps_float32_params():
    cfg = coarse_config("test", VOCAB)
    f32 = build_model(cfg, seed=2)
    bf16 = build_model(cfg.replace(dtype="bfloat16"), seed=2)
    params = jax.tree.leaves(nnx.state(bf16, nnx.Param))
    assert all(p.dtype == jnp.float32 for p in params)
    idx = jnp.asarray(random_ids((1, 12), VOCAB.coarse_vocab_size))
    lo, hi = forward(bf16, idx), forward(f32, idx)
    assert lo.dtype == jnp.float32
    assert np.abs(np.asarray(lo - hi)).max() < 0.1


@pytest.mark.slow
def test_train_step_is_a_pure_jitted_function_of_the_state():
    model = build_model(coarse_config("test", VOCAB, dropout=0.1), seed=3)
    graphdef, params = nnx.split(model, nnx.Param)
    opt = optax.adamw(1e-2)
    opt_state = opt.init(params)
    idx = jnp.asarray(random_ids((4, 24), VOCAB.coarse_vocab_size, seed=5))

    @jax.jit
    def train_step(params, opt_state, key):
        def loss_fn(p):
            logits = nnx.merge(graphdef, p)(idx[:, :-1], rngs=nnx.Rngs(dropout=key))
            return optax.softmax_cross_entropy_with_integer_labels(logits, idx[:, 1:]).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    losses = []
    for i in range(15):
        params, opt_state, loss = train_step(params, opt_state, jax.random.key(i))
        losses.append(float(loss))
    assert losses[-1] < losses[0] - 0.5
