"""Parity with transformers' Bark sub-models, through save_pretrained directories."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

from bark_kedro.models import FineGPTConfig, GPTConfig
from bark_kedro.models.transformers_format import (
    load_transformers_bark,
    load_transformers_model,
    model_from_transformers_state_dict,
)
from tests.models.reference_models import VOCAB, perturb_, random_ids

transformers = pytest.importorskip("transformers")

TOL = 1e-5
SIZES = dict(num_layers=2, num_heads=4, hidden_size=32, block_size=64, dropout=0.0)
forward = nnx.jit(lambda m, idx: m(idx))
fine_forward = nnx.jit(lambda m, k, idx: m(k, idx))


def sub_configs(bias: bool) -> dict:
    return {
        "semantic": transformers.BarkSemanticConfig(
            **SIZES,
            bias=bias,
            input_vocab_size=VOCAB.semantic_input_vocab_size,
            output_vocab_size=VOCAB.semantic_output_vocab_size,
        ),
        "coarse": transformers.BarkCoarseConfig(
            **SIZES,
            bias=bias,
            input_vocab_size=VOCAB.coarse_vocab_size,
            output_vocab_size=VOCAB.coarse_vocab_size,
        ),
        "fine": transformers.BarkFineConfig(
            **SIZES,
            bias=bias,
            input_vocab_size=VOCAB.fine_vocab_size,
            output_vocab_size=VOCAB.fine_vocab_size,
            n_codes_total=8,
            n_codes_given=1,
        ),
    }


MODEL_CLASSES = {
    "semantic": "BarkSemanticModel",
    "coarse": "BarkCoarseModel",
    "fine": "BarkFineModel",
}


def hf_model(stage: str, bias: bool, seed: int):
    torch.manual_seed(seed)
    cls = getattr(transformers, MODEL_CLASSES[stage])
    return perturb_(cls(sub_configs(bias)[stage]), seed)


def max_diff(a, b) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max())


def assert_causal_parity(model, ref, high: int, seed: int) -> None:
    idx = torch.from_numpy(random_ids((2, 30), high, seed)).long()
    with torch.no_grad():
        theirs = ref(input_ids=idx, use_cache=False).logits.numpy()
    assert max_diff(forward(model, jnp.asarray(idx.numpy())), theirs) <= TOL


def assert_fine_parity(model, ref, seed: int) -> None:
    idx = torch.from_numpy(random_ids((2, 30, 8), VOCAB.fine_vocab_size, seed)).long()
    for k in range(1, 8):
        with torch.no_grad():
            theirs = ref(k, input_ids=idx).logits.numpy()
        assert max_diff(fine_forward(model, k, jnp.asarray(idx.numpy())), theirs) <= TOL, k


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("stage", ["semantic", "coarse"])
def test_causal_submodel_directory(tmp_path, stage, bias):
    ref = hf_model(stage, bias, seed=1)
    ref.save_pretrained(tmp_path)
    model, config = load_transformers_model(tmp_path, vocab=VOCAB)
    assert isinstance(config, GPTConfig) and config.stage == stage and config.bias is bias
    high = config.input_vocab_size
    assert_causal_parity(model, ref, high, seed=2)


@pytest.mark.slow
def test_semantic_kv_cache_matches_transformers_cache():
    ref = hf_model("semantic", True, seed=3)
    config = GPTConfig(
        n_layer=2,
        n_head=4,
        n_embd=32,
        block_size=64,
        bias=True,
        input_vocab_size=VOCAB.semantic_input_vocab_size,
        output_vocab_size=VOCAB.semantic_output_vocab_size,
        vocab=VOCAB,
    )
    model = model_from_transformers_state_dict(ref.state_dict(), config)
    idx = torch.from_numpy(random_ids((1, 16), VOCAB.semantic_input_vocab_size, 4)).long()
    decode = nnx.jit(lambda m, x, c: m.decode(x, c))
    with torch.no_grad():
        out = ref(input_ids=idx[:, :10], use_cache=True)
    logits, cache = decode(model, jnp.asarray(idx[:, :10].numpy()), model.init_cache(1))
    assert max_diff(logits, out.logits) <= TOL
    past = out.past_key_values
    for t in range(10, 16):
        with torch.no_grad():
            out = ref(input_ids=idx[:, t : t + 1], past_key_values=past, use_cache=True)
        past = out.past_key_values
        logits, cache = decode(model, jnp.asarray(idx[:, t : t + 1].numpy()), cache)
        assert max_diff(logits, out.logits) <= TOL


@pytest.mark.parametrize("bias", [False, True])
def test_fine_submodel_directory(tmp_path, bias):
    ref = hf_model("fine", bias, seed=5)
    ref.save_pretrained(tmp_path)
    model, config = load_transformers_model(tmp_path, vocab=VOCAB)
    assert isinstance(config, FineGPTConfig)
    assert_fine_parity(model, ref, seed=6)


def test_bark_model_directory(tmp_path):
    configs = sub_configs(False)
    codec = transformers.EncodecConfig(
        hidden_size=8,
        num_filters=4,
        num_residual_layers=1,
        upsampling_ratios=[2, 2],
        codebook_size=64,
        codebook_dim=8,
        num_lstm_layers=1,
    )
    bark_config = transformers.BarkConfig(
        semantic_config=configs["semantic"].to_dict(),
        coarse_acoustics_config=configs["coarse"].to_dict(),
        fine_acoustics_config=configs["fine"].to_dict(),
        codec_config=codec.to_dict(),
    )
    torch.manual_seed(7)
    ref = perturb_(transformers.BarkModel(bark_config), 7)
    ref.save_pretrained(tmp_path)
    loaded = load_transformers_bark(tmp_path, vocab=VOCAB)
    assert set(loaded) == {"semantic", "coarse", "fine"}
    assert_causal_parity(loaded["semantic"][0], ref.semantic, VOCAB.semantic_input_vocab_size, 8)
    assert_causal_parity(loaded["coarse"][0], ref.coarse_acoustics, VOCAB.coarse_vocab_size, 9)
    assert_fine_parity(loaded["fine"][0], ref.fine_acoustics, seed=10)


def test_errors_name_the_problem(tmp_path):
    ref = hf_model("coarse", False, seed=11)
    config = GPTConfig(
        n_layer=2,
        n_head=4,
        n_embd=32,
        block_size=64,
        stage="coarse",
        input_vocab_size=VOCAB.coarse_vocab_size,
        output_vocab_size=VOCAB.coarse_vocab_size,
        vocab=VOCAB,
    )
    state = ref.state_dict()
    del state["layers.0.attn.att_proj.weight"]
    with pytest.raises(KeyError, match=r"layers\.0\.attn\.att_proj\.weight"):
        model_from_transformers_state_dict(state, config)
    with pytest.raises(ValueError, match=r"lm_head\.weight"):
        model_from_transformers_state_dict(ref.state_dict(), config.replace(output_vocab_size=200))
    ref.save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(data | {"model_type": "encodec"}))
    with pytest.raises(ValueError, match="model_type"):
        load_transformers_model(tmp_path, vocab=VOCAB)
    (tmp_path / "model.safetensors").unlink()
    (tmp_path / "config.json").write_text(json.dumps(data))
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_transformers_model(tmp_path, vocab=VOCAB)
