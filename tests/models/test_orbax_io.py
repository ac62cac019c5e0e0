"""The project's own Orbax checkpoints: parameters, config, metadata, extra state."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from bark_kedro.models import (
    build_model,
    coarse_config,
    fine_config,
    load_config,
    load_extra,
    load_metadata,
    load_model,
    save_model,
)
from tests.models.reference_models import VOCAB, random_ids

forward = nnx.jit(lambda m, *args: m(*args))


@pytest.mark.slow
def test_gpt_round_trip_with_metadata_and_optimizer_state(tmp_path):
    config = coarse_config("test", VOCAB, bias=True, dropout=0.1)
    model = build_model(config, seed=3)
    params = nnx.state(model, nnx.Param)
    opt_state = optax.adamw(1e-3).init(params)
    path = save_model(
        tmp_path / "ckpt",
        model,
        metadata={"step": 12, "data": "v1"},
        extra={"opt_state": opt_state},
    )
    assert load_config(path) == config
    assert load_metadata(path) == {"step": 12, "data": "v1"}
    restored, restored_config = load_model(path)
    assert restored_config == config
    idx = jnp.asarray(random_ids((2, 16), VOCAB.coarse_vocab_size))
    np.testing.assert_array_equal(forward(restored, idx), forward(model, idx))
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), opt_state)
    extra = load_extra(path, {"opt_state": target})
    for a, b in zip(jax.tree.leaves(extra), jax.tree.leaves(opt_state), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_fine_round_trip_and_dtype_override(tmp_path):
    model = build_model(fine_config("test", VOCAB), seed=4)
    save_model(tmp_path / "fine", model)
    assert load_metadata(tmp_path / "fine") == {}
    restored, config = load_model(tmp_path / "fine", dtype="bfloat16")
    assert config.dtype == "bfloat16"
    codes = jnp.asarray(random_ids((1, 12, 8), VOCAB.fine_vocab_size))
    assert np.abs(np.asarray(forward(restored, 2, codes) - forward(model, 2, codes))).max() < 0.1


@pytest.mark.slow
def test_overwrite_and_missing_checkpoint_errors(tmp_path):
    model = build_model(coarse_config("test", VOCAB), seed=5)
    save_model(tmp_path / "c", model)
    with pytest.raises(FileExistsError, match="overwrite"):
        save_model(tmp_path / "c", model)
    other = build_model(coarse_config("test", VOCAB), seed=6)
    save_model(tmp_path / "c", other, overwrite=True)
    idx = jnp.asarray(random_ids((1, 8), VOCAB.coarse_vocab_size))
    np.testing.assert_array_equal(forward(load_model(tmp_path / "c")[0], idx), forward(other, idx))
    with pytest.raises(FileNotFoundError, match="not a model checkpoint"):
        load_model(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="extra"):
        load_extra(tmp_path / "c", {})


def test_shape_changing_override_is_rejected(tmp_path):
    model = build_model(coarse_config("test", VOCAB), seed=7)
    save_model(tmp_path / "c", model)
    with pytest.raises(ValueError, match=r"'h\.0\.attn\.c_attn\.kernel' has shape \(32, 96\)"):
        load_model(tmp_path / "c", n_embd=64, n_head=2)
