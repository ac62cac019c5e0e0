"""Bark-compatible semantic ids: HuBERT layer 9 from three weight formats + learned quantizer."""

import zipfile

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from bark_kedro.pipelines.tokenize.params import TokenizeParams
from bark_kedro.tokenizers import corpus
from bark_kedro.tokenizers.bark_semantic import (
    BarkHubertQuantizer,
    BarkQuantizerNet,
    read_quantizer_file,
)
from bark_kedro.tokenizers.config import SemanticConfig
from bark_kedro.tokenizers.features import SSLExtractor, build_feature_extractor
from bark_kedro.tokenizers.frames import semantic_frame_count
from bark_kedro.tokenizers.semantic import SemanticTokenizer
from tests.helpers.signals import tone, write_corpus
from tests.tokenizers.bark_files import (
    CONV,
    DIM,
    save_fairseq_checkpoint,
    save_hf_folder,
    save_quantizer,
    tiny_hf_hubert,
)

SR = 16_000


# ---- quantizer --------------------------------------------------------------------------------
def _numpy_ids(net: BarkQuantizerNet, x: np.ndarray) -> np.ndarray:
    """The published architecture written out: 2 LSTM layers (PyTorch's i, f, g, o gates),
    [linear to 4096 (version 1)], linear to the logits, argmax."""
    p = {k: v.detach().double().numpy() for k, v in net.state_dict().items()}

    def sigmoid(z):
        return 1 / (1 + np.exp(-z))

    h_seq = x.astype(np.float64)
    for layer in (0, 1):
        w_ih, w_hh = p[f"lstm.weight_ih_l{layer}"], p[f"lstm.weight_hh_l{layer}"]
        b = p[f"lstm.bias_ih_l{layer}"] + p[f"lstm.bias_hh_l{layer}"]
        h = c = np.zeros(w_hh.shape[1])
        out = []
        for xt in h_seq:
            i, f, g, o = np.split(w_ih @ xt + w_hh @ h + b, 4)
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h = sigmoid(o) * np.tanh(c)
            out.append(h)
        h_seq = np.stack(out)
    if "intermediate.weight" in p:
        h_seq = h_seq @ p["intermediate.weight"].T + p["intermediate.bias"]
    return np.argmax(h_seq @ p["fc.weight"].T + p["fc.bias"], axis=1)


@pytest.mark.parametrize(("version", "info"), [(0, False), (0, True), (1, True)])
def test_quantizer_files_of_both_versions(tmp_path, version, info):
    path = tmp_path / "quantifier_hubert_base_ls960_14.pth"
    net = save_quantizer(path, version=version, info=info)
    if info:  # the .info entry sits next to torch's records, under the file's stem
        with zipfile.ZipFile(path) as z:
            assert "quantifier_hubert_base_ls960_14/.info" in z.namelist()
    quantizer = BarkHubertQuantizer(str(path))
    assert (quantizer.dim, quantizer.n_clusters, quantizer.version) == (DIM, 50, version)
    x = np.random.default_rng(0).normal(size=(40, DIM)).astype(np.float32)
    ids = quantizer.predict(x)
    assert ids.dtype == np.int32 and ids.shape == (40,) and len(np.unique(ids)) > 3
    np.testing.assert_array_equal(ids, _numpy_ids(net, x))
    assert set(quantizer.config()) >= {"path", "sha256", "version", "output_size"}


@pytest.mark.slow
def test_quantizer_batches_give_each_clips_own_ids(tmp_path):
    save_quantizer(tmp_path / "q.pth", version=1)
    quantizer = BarkHubertQuantizer(str(tmp_path / "q.pth"), batch_frames=60)
    rng = np.random.default_rng(1)
    clips = [rng.normal(size=(n, DIM)).astype(np.float32) for n in (5, 37, 1, 22, 30)]
    batched = quantizer.predict_batch(clips)
    for clip, ids in zip(clips, batched, strict=True):
        np.testing.assert_array_equal(ids, quantizer.predict(clip))
    assert [len(i) for i in batched] == [5, 37, 1, 22, 30]
    with pytest.raises(ValueError, match=r"takes \(frames, 32\) features"):
        quantizer.predict(np.zeros((3, 7), np.float32))


def test_bad_quantizer_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        read_quantizer_file(tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.pth.*not a quantizer file"):
        read_quantizer_file(tmp_path / "junk.pth")
    torch.save({"weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="other.pth.*not a HuBERT semantic quantizer"):
        read_quantizer_file(tmp_path / "other.pth")
    torch.save({"code": zipfile.ZipInfo("x")}, tmp_path / "pickled.pth")  # not weights-only
    with pytest.raises(ValueError, match="cannot read quantizer.*pickled.pth"):
        read_quantizer_file(tmp_path / "pickled.pth")
    path = tmp_path / "liar.pth"
    torch.save(BarkQuantizerNet(DIM, 16, 50, 0).state_dict(), path)
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("liar/.info", '{"input_size": 32, "hidden_size": 16, "output_size": 10000, '
                                 '"version": 0}')
    with pytest.raises(ValueError, match=r"liar.pth.*disagrees.*output_size"):
        read_quantizer_file(path)


# ---- HuBERT layer 9 in three formats ----------------------------------------------------------
@pytest.fixture(scope="module")
def hubert_files(tmp_path_factory):
    """The same random HuBERT as a transformers folder, a fairseq .pt and a torchaudio dict."""
    from torchaudio.models.wav2vec2.utils import import_huggingface_model

    folder = tmp_path_factory.mktemp("hubert")
    hf = tiny_hf_hubert()
    torchaudio_model = import_huggingface_model(hf)
    torch.save(torchaudio_model.state_dict(), folder / "torchaudio.pth")
    return {"model": hf, "transformers": save_hf_folder(hf, folder / "hf"),
            "fairseq": save_fairseq_checkpoint(hf, folder / "hubert_base_ls960.pt"),
            "torchaudio": folder / "torchaudio.pth"}


TINY_PARAMS = {
    "extractor_mode": "group_norm", "extractor_conv_layer_config": CONV,
    "extractor_conv_bias": False, "encoder_embed_dim": DIM, "encoder_projection_dropout": 0.0,
    "encoder_pos_conv_kernel": 16, "encoder_pos_conv_groups": 4, "encoder_num_layers": 9,
    "encoder_num_heads": 2, "encoder_attention_dropout": 0.0, "encoder_ff_interm_features": 64,
    "encoder_ff_interm_dropout": 0.0, "encoder_dropout": 0.0, "encoder_layer_norm_first": False,
    "encoder_layer_drop": 0.0, "aux_num_out": None,
}


@pytest.mark.parametrize("fmt", ["transformers", "fairseq", "torchaudio"])
def test_layer_9_matches_transformers_hidden_states_9(hubert_files, fmt):
    """fairseq's output_layer=9 is the output of the 9th transformer layer (after that layer's
    final LayerNorm, no encoder-level norm after it): transformers' hidden_states[9]."""
    params = TINY_PARAMS if fmt == "torchaudio" else None
    ext = SSLExtractor("hubert", layer=9, checkpoint=str(hubert_files[fmt]), model_params=params)
    assert ext.weights_format == fmt and ext.dim == DIM and not ext._normalize
    audio = tone(0.7, SR, seed=3)
    feats = ext(audio)
    assert feats.shape == (semantic_frame_count(len(audio)), DIM)
    wave = torch.from_numpy(np.pad(audio, (0, 80)))[None]  # the extractor's end padding
    with torch.inference_mode():
        hidden = hubert_files["model"](wave, output_hidden_states=True).hidden_states
    assert len(hidden) == 10  # the encoder input, then one per layer
    np.testing.assert_allclose(feats, hidden[9][0].numpy(), rtol=1e-4, atol=1e-4)
    assert not np.allclose(feats, hidden[8][0].numpy(), atol=1e-2)


def test_bad_hubert_weights_are_named(tmp_path):
    (tmp_path / "hf").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        SSLExtractor("hubert", checkpoint=str(tmp_path / "hf"))
    torch.save({"model": {"encoder.layers.0.weird": torch.zeros(1)}, "cfg": {}},
               tmp_path / "broken.pt")
    with pytest.raises(ValueError, match="broken.pt.*not a fairseq HuBERT"):
        SSLExtractor("hubert", checkpoint=str(tmp_path / "broken.pt"))
    torch.save({"x": zipfile.ZipInfo("x")}, tmp_path / "code.pt")
    with pytest.raises(ValueError, match=r"code.pt.*zipfile.ZipInfo.*refusing"):
        SSLExtractor("hubert", checkpoint=str(tmp_path / "code.pt"))


# ---- the tokenizer, its config and the corpus -------------------------------------------------
@pytest.mark.slow
def test_bark_tokenizer_saves_loads_and_checks_its_quantizer(hubert_files, tmp_path):
    save_quantizer(tmp_path / "q.pth", version=1)
    config = SemanticConfig(features="hubert", quantizer="bark_hubert",
                            quantizer_path=str(tmp_path / "q.pth"),
                            checkpoint=str(hubert_files["fairseq"]))
    tokenizer = config.build_bark_tokenizer()
    assert tokenizer.bark_compatible and tokenizer.vocab_size == 50
    clips = [tone(s, SR, seed=i) for i, s in enumerate((0.4, 1.1, 0.25))]
    ids = tokenizer.encode_batch(clips)
    for clip, one in zip(clips, ids, strict=True):
        np.testing.assert_array_equal(one, tokenizer.encode(clip))
        assert one.shape == (semantic_frame_count(len(clip)),)
    tokenizer.save(tmp_path / "tok")
    assert not (tmp_path / "tok" / "quantizer.npz").exists()
    back = SemanticTokenizer.load(tmp_path / "tok")
    assert back.bark_compatible and back.extractor.weights_format == "fairseq"
    np.testing.assert_array_equal(back.encode(clips[1]), ids[1])
    save_quantizer(tmp_path / "other.pth", version=1, seed=5)
    with pytest.raises(ValueError, match="other.pth.*not the file this tokenizer was made with"):
        SemanticTokenizer.load(tmp_path / "tok", quantizer_path=tmp_path / "other.pth")
    (tmp_path / "q.pth").unlink()
    with pytest.raises(FileNotFoundError, match="q.pth.*does not exist"):
        SemanticTokenizer.load(tmp_path / "tok")


def test_missing_files_fail_when_parameters_are_validated(tmp_path, hubert_files):
    base = {"features": "hubert", "quantizer": "bark_hubert"}
    with pytest.raises(ValueError, match="quantizer_path=None.*needs the path"):
        SemanticConfig(**base)
    with pytest.raises(ValueError, match=r"quantizer_path=.*nope.pth.*no such file"):
        SemanticConfig(**base, quantizer_path=str(tmp_path / "nope.pth"))
    save_quantizer(tmp_path / "q.pth")
    with pytest.raises(ValueError, match=r"checkpoint=.*hubert.pt.*no HuBERT Base weights"):
        SemanticConfig(**base, quantizer_path=str(tmp_path / "q.pth"),
                       checkpoint=str(tmp_path / "hubert.pt"))
    with pytest.raises(ValueError, match="needs features=hubert"):
        SemanticConfig(quantizer="bark_hubert", quantizer_path=str(tmp_path / "q.pth"))
    with pytest.raises(ValidationError, match="quantizer_path"):  # as Kedro validates params
        TokenizeParams.model_validate({"semantic": {"features": "hubert",
                                                    "quantizer": "bark_hubert"}})
    with pytest.raises(ValueError, match="quantizer=.*must be one of"):
        SemanticConfig(quantizer="vq")


@pytest.mark.slow
def test_corpus_tokenizes_with_the_bark_quantizer(tmp_path, hubert_files):
    utterances = write_corpus(tmp_path / "corpus")
    save_quantizer(tmp_path / "q.pth", version=0)
    config = SemanticConfig(features="hubert", quantizer="bark_hubert",
                            quantizer_path=str(tmp_path / "q.pth"),
                            checkpoint=str(hubert_files["transformers"]))
    tokenizer, stats = corpus.fit_semantic_tokenizer(utterances, config, progress=False)
    assert stats["vocab_size"] == 50 and stats["quantizer_version"] == 0
    table, rejects, _ = corpus.tokenize_semantic(utterances, tokenizer, progress=False)
    assert len(table) == len(utterances) and len(rejects) == 0
    for row in table.itertuples():
        assert abs(len(row.semantic_ids) - row.duration_s * 50) <= 1
        assert row.semantic_ids.max() < 50
    # the same ids as features -> quantizer by hand
    ext = build_feature_extractor("hubert", checkpoint=str(hubert_files["transformers"]))
    audio = tone(1.0, SR, seed=0)
    np.testing.assert_array_equal(tokenizer.encode(audio),
                                  BarkHubertQuantizer(str(tmp_path / "q.pth")).predict(ext(audio)))


def test_default_networks_have_the_published_shapes():
    """quantifier_hubert_base_ls960*.pth: 768 -> 1024 LSTM, 10 000 ids; version 1 adds 4096."""
    expected = {"lstm.weight_ih_l0": (4096, 768), "lstm.weight_hh_l0": (4096, 1024),
                "lstm.weight_ih_l1": (4096, 1024), "lstm.bias_hh_l1": (4096,)}
    v0 = {k: tuple(v.shape) for k, v in BarkQuantizerNet(version=0).state_dict().items()}
    v1 = {k: tuple(v.shape) for k, v in BarkQuantizerNet(version=1).state_dict().items()}
    for key, shape in expected.items():
        assert v0[key] == v1[key] == shape
    assert v0["fc.weight"] == (10_000, 1024) and v0["fc.bias"] == (10_000,)
    assert len(v0) == 10 and len(v1) == 12
    assert v1["intermediate.weight"] == (4096, 1024) and v1["fc.weight"] == (10_000, 4096)
    with pytest.raises(ValueError, match="version must be one of"):
        BarkQuantizerNet(version=2)


def test_fairseq_configs_pickled_as_fairseq_classes_load_inertly(hubert_files, tmp_path,
                                                                 monkeypatch):
    """fairseq checkpoints pickle config objects of fairseq's own classes (enum choices,
    Namespace args); they are read as inert values, without fairseq installed."""
    import enum
    import sys
    import types

    package, module = types.ModuleType("fairseq"), types.ModuleType("fairseq.dataclass")

    class Choice(enum.StrEnum):
        default = "default"

    Choice.__module__, Choice.__qualname__ = "fairseq.dataclass", "Choice"
    module.Choice = Choice
    monkeypatch.setitem(sys.modules, "fairseq", package)
    monkeypatch.setitem(sys.modules, "fairseq.dataclass", module)
    checkpoint = torch.load(hubert_files["fairseq"], weights_only=False)
    checkpoint["cfg"]["model"]["extractor_mode"] = Choice.default
    checkpoint["cfg"]["task"]["normalize"] = False
    path = tmp_path / "with_enums.pt"
    torch.save(checkpoint, path)
    monkeypatch.delitem(sys.modules, "fairseq.dataclass")
    monkeypatch.delitem(sys.modules, "fairseq")
    ext = SSLExtractor("hubert", layer=9, checkpoint=str(path))
    reference = SSLExtractor("hubert", layer=9, checkpoint=str(hubert_files["fairseq"]))
    audio = tone(0.3, SR)
    np.testing.assert_array_equal(ext(audio), reference(audio))
