import re

import numpy as np
import pytest
import torch
import torchaudio

from bark_kedro.tokenizers.features import (
    MFCCExtractor,
    SSLExtractor,
    build_feature_extractor,
    build_ssl_model,
    expected_ssl_checkpoint,
    load_ssl_model,
)
from bark_kedro.tokenizers.frames import SEMANTIC_RATE_HZ, semantic_frame_count
from bark_kedro.tokenizers.kmeans import KMeansQuantizer
from bark_kedro.tokenizers.semantic import (
    SemanticTokenizer,
    extract_features,
    fit_semantic_quantizer,
)
from tests.helpers.signals import TINY_HUBERT

SR = 16_000


@pytest.mark.parametrize("n", [1, 319, 320, 700, 16_000, 16_123, 40_000])
def test_mfcc_shape_and_rate(n, make_tone):
    feats = MFCCExtractor()(make_tone(n / SR, SR)[:n] if n > 1 else np.zeros(1, np.float32))
    assert feats.shape == (semantic_frame_count(n), 39)
    assert feats.dtype == np.float32 and np.all(np.isfinite(feats))
    if n >= SR:
        assert abs(len(feats) - n / SR * SEMANTIC_RATE_HZ) <= 1


def test_mfcc_tracks_the_signal(make_tone):
    ext = build_feature_extractor("mfcc", n_mfcc=10)
    a, b = ext(make_tone(1.0, SR, seed=0)), ext(make_tone(1.0, SR, seed=1))
    assert a.shape == (50, 30)
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(a, ext(make_tone(1.0, SR, seed=0)))
    # the static coefficients are torchaudio's MFCC, frame for frame
    ref = torchaudio.transforms.MFCC(SR, 10, melkwargs={"n_fft": 512, "win_length": 400,
                                                       "hop_length": 320, "n_mels": 40})
    np.testing.assert_allclose(a[:, :10], ref(torch.from_numpy(make_tone(1.0, SR)))[:, :50].T,
                               rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("audio, rate, match", [
    (np.zeros((2, 800), np.float32), SR, "mono"),
    (np.zeros(800, np.int16), SR, "float"),
    (np.array([0.0, np.nan], np.float32), SR, "NaN"),
    (np.zeros(0, np.float32), SR, "empty"),
    (np.zeros(800, np.float32), 24_000, "16000 Hz"),
])
def test_bad_audio_is_named(audio, rate, match):
    with pytest.raises(ValueError, match=match):
        MFCCExtractor()(audio, rate)


def _tiny_model(seed=0):
    torch.manual_seed(seed)
    return torchaudio.models.wav2vec2_model(**TINY_HUBERT).eval()


def test_hubert_loads_from_a_checkpoint_file(tmp_path, make_tone):
    model = _tiny_model()
    path = tmp_path / "tiny_hubert.pth"
    torch.save(model.state_dict(), path)
    ext = build_feature_extractor("hubert", layer=2, checkpoint=str(path), model_params=TINY_HUBERT)
    audio = make_tone(0.5, SR)
    feats = ext(audio)
    assert feats.shape == (semantic_frame_count(len(audio)), 32)
    padded = torch.from_numpy(np.pad(audio, (0, 80)))[None]
    with torch.inference_mode():
        expected = model.extract_features(padded, num_layers=2)[0][1][0].numpy()
    np.testing.assert_allclose(feats, expected, rtol=1e-5, atol=1e-5)
    assert ext(audio[:100]).shape == (1, 32)  # shorter than the conv window: one frame
    other = build_feature_extractor("hubert", layer=3, checkpoint=str(path),
                                    model_params=TINY_HUBERT)
    assert not np.allclose(other(audio), feats)


def test_hubert_loads_from_torch_hub_cache(tmp_path, make_tone):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        path = expected_ssl_checkpoint("HUBERT_BASE")
        assert path == tmp_path / "hub" / "checkpoints" / "hubert_fairseq_base_ls960.pth"
        with pytest.raises(FileNotFoundError, match="hubert_fairseq_base_ls960.pth"):
            load_ssl_model("HUBERT_BASE", model_params=TINY_HUBERT)
        path.parent.mkdir(parents=True)
        torch.save(_tiny_model().state_dict(), path)
        ext = SSLExtractor("hubert", layer=1, model_params=TINY_HUBERT)
        assert ext(make_tone(0.2, SR)).shape == (10, 32)
    finally:
        torch.hub.set_dir(old)


def test_hubert_rejects_bad_layer_and_weights(tmp_path):
    good = tmp_path / "good.pth"
    torch.save(_tiny_model().state_dict(), good)
    with pytest.raises(ValueError, match=r"layer must be in \[1, 3\]"):
        SSLExtractor("hubert", layer=4, checkpoint=str(good), model_params=TINY_HUBERT)
    path = tmp_path / "w.pth"
    torch.save({"not": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="does not hold HUBERT_BASE weights"):
        SSLExtractor("hubert", layer=1, checkpoint=str(path), model_params=TINY_HUBERT)
    with pytest.raises(ValueError, match="unknown semantic feature kind"):
        build_feature_extractor("whisper")
    with pytest.raises(ValueError, match="not a torchaudio"):
        expected_ssl_checkpoint("NOPE")


def test_tiny_config_has_the_base_architecture():
    def names(model):  # parameter names with the layer number wildcarded
        return {re.sub(r"\.layers\.\d+\.", ".layers.*.", k) for k in model.state_dict()}

    assert names(_tiny_model()) == names(build_ssl_model("HUBERT_BASE"))


def test_semantic_tokenizer_end_to_end(tmp_path, make_tone):
    ext = build_feature_extractor("mfcc")
    train = [make_tone(d, SR, seed=s) for s, d in enumerate((1.0, 1.5, 2.0))]
    feats = extract_features(ext, train)
    q = fit_semantic_quantizer(feats, n_clusters=8, max_frames=200, seed=0)
    q.save(tmp_path / "q.npz")
    tok = SemanticTokenizer(ext, KMeansQuantizer.load(tmp_path / "q.npz"))
    ids = tok.encode(make_tone(1.3, SR, seed=9))
    assert ids.shape == (semantic_frame_count(int(1.3 * SR)),) and ids.dtype == np.int32
    assert 0 <= ids.min() and ids.max() < tok.vocab_size == 8
    assert len(np.unique(ids)) > 1
    assert [len(i) for i in tok.encode_batch(train)] == [len(f) for f in feats]
    with pytest.raises(ValueError, match="fitted on 39-dim"):
        SemanticTokenizer(build_feature_extractor("mfcc", n_mfcc=5), q)


@pytest.mark.slow
def test_semantic_tokenizer_saves_and_loads_a_folder(tmp_path, make_tone):
    train = [make_tone(d, SR, seed=s) for s, d in enumerate((1.0, 1.5))]
    path = tmp_path / "w.pth"
    torch.save(_tiny_model().state_dict(), path)
    audio = make_tone(0.7, SR, seed=5)
    for ext in (build_feature_extractor("mfcc", n_mfcc=8),
                build_feature_extractor("hubert", layer=2, checkpoint=str(path),
                                        model_params=TINY_HUBERT)):
        q = fit_semantic_quantizer(extract_features(ext, train), n_clusters=5, seed=0)
        tok = SemanticTokenizer(ext, q)
        tok.save(tmp_path / ext.kind)
        again = SemanticTokenizer.load(tmp_path / ext.kind)
        assert again.extractor.config() == ext.config() and again.vocab_size == 5
        np.testing.assert_array_equal(again.encode(audio), tok.encode(audio))
    with pytest.raises(FileNotFoundError, match="quantizer.npz"):
        SemanticTokenizer.load(tmp_path / "nothing")
