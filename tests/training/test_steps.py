"""Each stage's softmax range, the token statistics, and the jitted train steps."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bark_kedro.models import build_model, coarse_config
from bark_kedro.training import MeshConfig, OptimizerConfig, stage_vocab
from bark_kedro.training.batching import collate
from bark_kedro.training.layouts import coarse_examples
from bark_kedro.training.loop import compile_steps, place_state
from bark_kedro.training.mesh import global_batch, make_mesh
from bark_kedro.training.model_init import CONFIG_BUILDERS
from bark_kedro.training.state import (
    decay_mask,
    learning_rate_schedule,
    make_optimizer,
    split_model,
)
from bark_kedro.training.step import stage_outputs, token_stats

VOCAB = stage_vocab(40, 64, 32)


def _log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _model(stage: str):
    return build_model(CONFIG_BUILDERS[stage]("test", VOCAB), seed=0)


@pytest.mark.slow
def test_coarse_softmax_is_over_the_positions_codebook_only():
    rng = np.random.default_rng(0)
    s, c = VOCAB.semantic_vocab_size, VOCAB.codebook_size
    model = _model("coarse")
    inputs = rng.integers(0, VOCAB.coarse_vocab_size, (2, 5))
    codebook = rng.integers(0, 2, (2, 5))
    local = rng.integers(0, c, (2, 5))
    targets = s + codebook * c + local
    mask = np.ones((2, 5), bool)
    batch = {"inputs": jnp.asarray(inputs), "targets": jnp.asarray(targets),
             "codebook": jnp.asarray(codebook), "loss_mask": jnp.asarray(mask)}
    picked, got_targets, _ = stage_outputs(model, "coarse", batch, None)
    np.testing.assert_array_equal(got_targets, local)
    logits = np.asarray(model(jnp.asarray(inputs)))  # every id: the reference
    stats = token_stats(picked, got_targets, jnp.asarray(mask))
    expected = 0.0
    for b in range(2):
        for t in range(5):
            lo = s + codebook[b, t] * c
            np.testing.assert_allclose(picked[b, t], logits[b, t, lo:lo + c], atol=1e-5)
            expected -= _log_softmax(logits[b, t, lo:lo + c])[local[b, t]]
    assert float(stats["loss_sum"]) == pytest.approx(expected, rel=1e-5)


@pytest.mark.slow
def test_semantic_logits_only_after_the_merged_context():
    model = _model("semantic")
    n = model.config.merge_context_len
    t = n + 6  # model positions: the merged context, then 6 with loss
    rng = np.random.default_rng(1)
    inputs = rng.integers(0, VOCAB.semantic_vocab_size, (1, n + t))
    batch = {"inputs": jnp.asarray(inputs), "targets": jnp.arange(t)[None],
             "loss_mask": jnp.arange(t)[None] >= n}
    logits, targets, mask = stage_outputs(model, "semantic", batch, None)
    full = np.asarray(model(jnp.asarray(inputs), merge_context=True))
    assert logits.shape == (1, t - n, VOCAB.semantic_vocab_size + 1)  # ids and the EOS (pad)
    np.testing.assert_allclose(logits, full[:, n:, : VOCAB.semantic_vocab_size + 1], atol=1e-5)
    np.testing.assert_array_equal(targets, np.arange(n, t)[None])
    assert bool(np.all(mask))


@pytest.mark.slow
def test_fine_range_and_topk_counts():
    model = _model("fine")
    inputs = jnp.zeros((1, 3, VOCAB.n_fine_codebooks), jnp.int32)
    batch = {"inputs": inputs, "targets": jnp.zeros((1, 3), jnp.int32),
             "codebook": jnp.asarray([2]), "loss_mask": jnp.ones((1, 3), bool)}
    fine, _, _ = stage_outputs(model, "fine", batch, None)
    assert fine.shape[-1] == VOCAB.codebook_size  # never the pad code
    # target ranked 1st, 5th and 12th; the masked 4th position does not count
    scores = np.tile(np.arange(20, 0, -1, dtype=np.float32), (1, 4, 1))
    stats = token_stats(jnp.asarray(scores), jnp.asarray([[0, 4, 11, 0]]),
                        jnp.asarray([[True, True, True, False]]))
    assert (float(stats["top1"]), float(stats["top10"]), float(stats["n_tokens"])) == (1, 2, 3)
    expected = -sum(_log_softmax(scores[0, 0])[i] for i in (0, 4, 11))
    assert float(stats["loss_sum"]) == pytest.approx(expected, rel=1e-5)


@pytest.mark.slow
def test_schedule_and_weight_decay_mask():
    config = OptimizerConfig(learning_rate=1e-3, warmup_steps=10, min_learning_rate_ratio=0.1)
    schedule = learning_rate_schedule(config, total_steps=100)
    assert float(schedule(0)) == 0.0
    assert float(schedule(10)) == pytest.approx(1e-3)
    assert float(schedule(55)) == pytest.approx(0.55e-3, rel=1e-3)  # half way down the cosine
    assert float(schedule(100)) == pytest.approx(1e-4)
    params = split_model(build_model(coarse_config("test", VOCAB, bias=True), 0))[1].trainable
    mask = decay_mask(params)
    assert mask["h.0.attn.c_attn.kernel"] and mask["wte.embedding"] and mask["lm_head.kernel"]
    assert not mask["h.0.attn.c_attn.bias"] and not mask["h.0.ln_1.scale"]
    assert not mask["ln_f.bias"]
    # with zero gradients only the decayed arrays move
    opt, _ = make_optimizer(config.replace(warmup_steps=0, weight_decay=0.5), 10)
    zeros = jax.tree.map(jnp.zeros_like, params)
    updates, _ = jax.jit(opt.update)(zeros, jax.jit(opt.init)(params), params)  # eager: ~10x slower
    moved = {k: bool(jnp.any(u != 0)) for k, u in updates.items()}
    assert moved == {k: v and bool(jnp.any(params[k] != 0)) for k, v in mask.items()}


def _coarse_setup(accumulation: int):
    model = build_model(coarse_config("test", VOCAB), seed=0)
    rng = np.random.default_rng(0)
    examples = [e for _ in range(3) for e in coarse_examples(
        rng.integers(0, 64, 40), rng.integers(0, 32, (2, 60)), VOCAB, semantic_window=16,
        max_coarse_history=40, sliding_window_len=10, block_size=128)][:4]
    assert len(examples) == 4
    mesh = make_mesh(MeshConfig(data=1))
    model_def, state = split_model(model)
    opt, _ = make_optimizer(OptimizerConfig(warmup_steps=0, accumulation_steps=accumulation), 10)
    state, shardings = place_state(
        state.replace(opt_state=jax.jit(opt.init)(state.trainable)), mesh)
    steps = compile_steps(model_def, "coarse", mesh, shardings, opt)
    length = max(e.length for e in examples)

    def batch(rows):
        host = collate([examples[i] for i in rows], length)
        host.pop("lengths")
        return global_batch(host, mesh)

    return steps, state, batch


@pytest.mark.slow
def test_gradient_accumulation_equals_one_big_batch():
    key = jax.random.key(0)
    steps, state, batch = _coarse_setup(1)
    one, metrics = steps.train(state, batch([0, 1, 2, 3]), key)
    steps, state, batch = _coarse_setup(2)
    before = {k: np.asarray(v) for k, v in state.trainable.items()}
    grads, stats = steps.zeros(state)
    for rows in ([0, 1], [2, 3]):
        grads, stats = steps.accumulate(state, grads, stats, batch(rows), key)
    two, metrics_two = steps.apply(state, grads, stats)
    assert int(one.step) == int(two.step) == 1
    one, two = one.trainable, two.trainable
    assert float(metrics["loss"]) == pytest.approx(float(metrics_two["loss"]), rel=1e-6)
    assert float(metrics["grad_norm"]) == pytest.approx(float(metrics_two["grad_norm"]), rel=1e-5)
    for name in one:
        np.testing.assert_allclose(one[name], two[name], atol=1e-6, err_msg=name)
    assert not all(np.array_equal(one[k], before[k]) for k in one)  # it did update
    assert optax.global_norm(one) > 0
