"""Behaviour of the Flax fine model: non-causal, codebook selection, tied heads."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from bark_kedro.models import FineGPT, build_model, fine_config
from tests.models.reference_models import VOCAB, random_ids

forward = nnx.jit(lambda m, k, idx: m(k, idx))


@pytest.fixture(scope="module")
def model() -> FineGPT:
    return build_model(fine_config("test", VOCAB), seed=0)


@pytest.fixture(scope="module")
def codes() -> jnp.ndarray:
    return jnp.asarray(random_ids((2, 24, 8), VOCAB.fine_vocab_size, seed=1))


@pytest.mark.slow
def test_shapes_and_later_codebooks_ignored(model, codes):
    logits = forward(model, 3, codes)
    assert logits.shape == (2, 24, VOCAB.fine_vocab_size) and logits.dtype == jnp.float32
    noisy = codes.at[:, :, 4:].set((codes[:, :, 4:] + 5) % VOCAB.fine_vocab_size)
    np.testing.assert_allclose(forward(model, 3, noisy), logits, atol=1e-6)
    earlier = codes.at[:, :, 3].set((codes[:, :, 3] + 5) % VOCAB.fine_vocab_size)
    assert np.abs(np.asarray(forward(model, 3, earlier) - logits)).max() > 1e-4


def test_non_causal(model, codes):
    logits = forward(model, 2, codes)
    late = codes.at[:, 20:, 0].set((codes[:, 20:, 0] + 1) % VOCAB.fine_vocab_size)
    assert np.abs(np.asarray(forward(model, 2, late)[:, :5] - logits[:, :5])).max() > 1e-5


def test_traced_codebook_equals_static(model, codes):
    graphdef, state = nnx.split(model)
    traced = jax.jit(lambda s, k, x: nnx.merge(graphdef, s)(k, x))
    for k in (1, 7):
        np.testing.assert_allclose(
            traced(state, jnp.int32(k), codes), forward(model, k, codes), atol=1e-5
        )


def test_heads_are_the_input_embeddings(model, codes):
    """Head k is embedding table k: moving table 5 moves the logits of codebook 5."""
    graphdef, state = nnx.split(model)
    bumped = jax.tree.map(lambda x: x, state)
    bumped["wtes"].value = state["wtes"].value.at[5].multiply(2.0)
    other = nnx.merge(graphdef, bumped)
    assert np.abs(np.asarray(forward(other, 5, codes) - forward(model, 5, codes))).max() > 1e-3
    np.testing.assert_allclose(forward(other, 4, codes), forward(model, 4, codes), atol=1e-6)


@pytest.mark.parametrize("k", [0, 8, -1])
def test_bad_codebook_index(model, codes, k):
    with pytest.raises(ValueError, match="codebook_idx"):
        model(k, codes)


def test_bad_input_shape(model):
    with pytest.raises(ValueError, match="idx must be"):
        model(1, jnp.zeros((1, 10, 4), jnp.int32))
