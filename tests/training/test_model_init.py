"""Stage models from scratch and from the official checkpoint formats; frozen layers."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

from bark_kedro.models import FineGPT, save_model
from bark_kedro.models.suno_format import export_suno_checkpoint
from bark_kedro.training import (
    FrozenParam,
    ModelInitConfig,
    build_stage_model,
    count_params,
    stage_vocab,
)
from bark_kedro.training.state import split_model

VOCAB = stage_vocab(40, 64, 32)
SCRATCH = ModelInitConfig(preset="test")


def _params(model) -> dict[str, np.ndarray]:
    state = split_model(model)[1]
    return {k: np.asarray(v) for k, v in (state.frozen | state.trainable).items()}


def _assert_same_params(a, b):
    pa, pb = _params(a), _params(b)
    assert pa.keys() == pb.keys()
    for name in pa:
        np.testing.assert_array_equal(pa[name], pb[name], err_msg=name)


def test_scratch_models_per_stage_and_seed():
    for stage in ("semantic", "coarse", "fine"):
        model = build_stage_model(stage, VOCAB, SCRATCH.replace(overrides={"n_layer": 3}), 1)
        assert model.config.n_layer == 3 and model.config.vocab == VOCAB
        assert isinstance(model, FineGPT) == (stage == "fine")
    a, b = (build_stage_model("coarse", VOCAB, SCRATCH, s) for s in (0, 1))
    assert not np.array_equal(_params(a)["wte.embedding"], _params(b)["wte.embedding"])
    with pytest.raises(ValueError, match="stage must be one of"):
        build_stage_model("text", VOCAB, SCRATCH)


@pytest.mark.parametrize("stage", ["semantic", "fine"])
def test_suno_and_orbax_checkpoints_load_and_are_checked(tmp_path, stage):
    source = build_stage_model(stage, VOCAB, SCRATCH, seed=4)
    pt = export_suno_checkpoint(source, tmp_path / f"{stage}.pt")
    loaded = build_stage_model(stage, VOCAB, ModelInitConfig(
        init_from="suno", checkpoint=str(pt), overrides={"dropout": 0.1}), seed=0)
    _assert_same_params(source, loaded)
    assert loaded.config.dropout == 0.1
    directory = save_model(tmp_path / f"{stage}_orbax", source)
    _assert_same_params(source, build_stage_model(stage, VOCAB, ModelInitConfig(
        init_from="orbax", checkpoint=str(directory))))
    other = stage_vocab(40, 100, 32)
    with pytest.raises(ValueError, match="does not match the vocabulary|vocabulary differs"):
        build_stage_model(stage, other, ModelInitConfig(init_from="orbax",
                                                        checkpoint=str(directory)))
    with pytest.raises(ValueError, match=r"overrides \['n_layer'\] cannot change"):
        build_stage_model(stage, VOCAB, ModelInitConfig(
            init_from="suno", checkpoint=str(pt), overrides={"n_layer": 4}))


def test_wrong_stage_or_missing_checkpoint_is_named(tmp_path):
    coarse = build_stage_model("coarse", VOCAB, SCRATCH)
    directory = save_model(tmp_path / "coarse", coarse)
    with pytest.raises(ValueError, match="is a coarse model, the semantic stage needs"):
        build_stage_model("semantic", VOCAB, ModelInitConfig(init_from="orbax",
                                                             checkpoint=str(directory)))
    pt = export_suno_checkpoint(coarse, tmp_path / "coarse.pt")
    with pytest.raises(ValueError, match="vocab_size=.* does not match the vocabulary"):
        build_stage_model("semantic", VOCAB, ModelInitConfig(init_from="suno",
                                                             checkpoint=str(pt)))
    missing = str(tmp_path / "no.pt")
    with pytest.raises(ValueError, match=f"ModelInitConfig.checkpoint names no file.*{missing}"):
        ModelInitConfig(init_from="suno", checkpoint=missing)


def test_transformers_directory(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.BarkCoarseConfig(
        num_layers=2, num_heads=2, hidden_size=32, block_size=128, dropout=0.0, bias=False,
        input_vocab_size=VOCAB.coarse_vocab_size, output_vocab_size=VOCAB.coarse_vocab_size)
    transformers.BarkCoarseModel(config).save_pretrained(tmp_path)
    model = build_stage_model("coarse", VOCAB, ModelInitConfig(
        init_from="transformers", checkpoint=str(tmp_path)))
    assert model.config.n_layer == 2 and model.config.stage == "coarse"


def frozen_init(n_blocks: int) -> ModelInitConfig:
    return SCRATCH.replace(finetune="freeze", freeze_layers=n_blocks)


def test_freeze_embeddings_and_first_blocks():
    model = build_stage_model("coarse", VOCAB, frozen_init(1))
    frozen = {".".join(map(str, p)) for p, _ in nnx.to_flat_state(nnx.state(model, FrozenParam))}
    assert any(n.startswith("wte") for n in frozen) and any(n.startswith("wpe") for n in frozen)
    assert any(n.startswith("h.0.") for n in frozen)
    assert not any(n.startswith(("h.1.", "lm_head", "ln_f")) for n in frozen)
    counts = count_params(model)
    assert counts["frozen"] + counts["trainable"] == counts["total"] > counts["frozen"] > 0
    fine = build_stage_model("fine", VOCAB, frozen_init(0))
    names = {".".join(map(str, p)) for p, _ in nnx.to_flat_state(nnx.state(fine, FrozenParam))}
    assert {n.split(".")[0] for n in names} == {"wtes", "wpe"}
    assert sum(x.size for x in jax.tree.leaves(nnx.state(fine, nnx.Param))) == count_params(
        fine)["total"]
    with pytest.raises(ValueError, match="freeze_layers=5 must lie in"):
        build_stage_model("coarse", VOCAB, frozen_init(5))
