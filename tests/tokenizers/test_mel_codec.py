import numpy as np
import pytest
import torch

from bark_kedro.datasets.artifacts import CodecModelDataset
from bark_kedro.tokenizers.codec import load_codec, load_codec_file, resolve_weights
from bark_kedro.tokenizers.config import CodecConfig
from bark_kedro.tokenizers.frames import CODEC_HOP, CODEC_RATE_HZ, codec_frame_count
from bark_kedro.tokenizers.mel_codec import MelCodec, MelCodecConfig
from tests.helpers.signals import tone

SR = 24_000
SMALL = MelCodecConfig(n_mels=40, n_fft=640, codebook_size=64, max_fit_frames=2000,
                       kmeans_iters=5, init_sample=500, griffin_lim_iters=8)


@pytest.fixture(scope="module")
def clips():
    return [tone(2.0, SR, seed=s) for s in range(4)]


@pytest.fixture(scope="module")
def codec(clips):
    return MelCodec.fit(clips, SMALL)


def test_default_layout_is_barks():
    c = MelCodecConfig()
    assert (c.n_codebooks, c.codebook_size) == (8, 1024)


def test_shapes_rates_dtype_and_range(codec):
    audios = [tone(1.0, SR, seed=7), tone(1.337, SR, seed=8), tone(0.004, SR, seed=9)]
    codes = codec.encode_batch(audios)
    for audio, c in zip(audios, codes, strict=True):
        assert c.dtype == np.int16
        assert c.shape == (8, codec_frame_count(len(audio)))
        assert c.min() >= 0 and c.max() < SMALL.codebook_size
    assert codes[0].shape[1] == CODEC_RATE_HZ
    assert codes[2].shape == (8, 1)  # shorter than one frame: one frame
    audio = codec.decode(codes[1])
    assert audio.dtype == np.float32 and audio.shape == (codes[1].shape[1] * CODEC_HOP,)
    batch = codec.decode(np.stack([codes[0], codes[0]]))
    assert batch.shape == (2, CODEC_RATE_HZ * CODEC_HOP)
    assert len(np.unique(codes[0][0])) > 5  # frames of a gliding tone get varied codes


def test_round_trip_keeps_the_spectrum(codec, clips):
    audio = clips[0]
    decoded = codec.decode(codec.encode(audio))
    before, after = codec.log_mel(audio), codec.log_mel(decoded[: len(audio)])
    unrelated = codec.log_mel(tone(2.0, SR, seed=11))
    error = np.mean((before - after) ** 2)
    assert error < 0.5 * np.mean((before - unrelated) ** 2)
    # more residual levels quantize more finely
    coarse = codec.decode(codec.encode(audio)[:2])
    assert np.mean((before - codec.log_mel(coarse[: len(audio)])) ** 2) > 0.0


def test_fit_is_deterministic_from_a_seed(clips, codec):
    again = MelCodec.fit(clips, SMALL)
    np.testing.assert_array_equal(again.codebooks, codec.codebooks)
    other = MelCodec.fit(clips, MelCodecConfig(**{**SMALL.__dict__, "seed": 1}))
    assert not np.array_equal(other.codebooks, codec.codebooks)
    audio = tone(0.5, SR, seed=3)
    np.testing.assert_array_equal(codec.decode(codec.encode(audio)),
                                  codec.decode(codec.encode(audio)))


def test_save_load_and_the_catalog_dataset(codec, tmp_path):
    path = tmp_path / "codec_model.pt"
    codec.save(path)
    loaded = load_codec_file(path)
    assert isinstance(loaded, MelCodec) and loaded.weights_source == "mel_rvq"
    assert loaded.config == codec.config
    audio = tone(0.7, SR, seed=5)
    np.testing.assert_array_equal(loaded.encode(audio), codec.encode(audio))
    dataset = CodecModelDataset(str(tmp_path / "versioned" / "codec_model.pt"))
    dataset.save(codec)
    np.testing.assert_array_equal(dataset.load().codebooks, codec.codebooks)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        MelCodec.load(tmp_path / "missing.pt")
    torch.save({"codec": "mel_rvq", "format_version": 99}, tmp_path / "future.pt")
    with pytest.raises(ValueError, match="format"):
        load_codec_file(tmp_path / "future.pt")


def test_bad_input_is_named(codec):
    with pytest.raises(ValueError, match="empty"):
        codec.encode(np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="24000 Hz"):
        codec.encode_batch([tone(0.5, 16_000)], sample_rate=16_000)
    with pytest.raises(ValueError, match=r"lie in \[0, 64\)"):
        codec.decode(np.full((8, 4), 64))
    with pytest.raises(ValueError, match="shape"):
        codec.decode(np.zeros((9, 4), np.int64))
    with pytest.raises(ValueError, match="at least 64 training frames"):
        MelCodec.fit([tone(0.2, SR)], SMALL)
    with pytest.raises(ValueError, match="training clips"):
        MelCodec.fit([], SMALL)
    with pytest.raises(ValueError, match="n_mels"):
        MelCodecConfig(n_mels=0)


def test_auto_without_encodec_weights_is_the_mel_codec(monkeypatch, tmp_path, clips):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # no cached EnCodec
    assert resolve_weights("auto") == "mel"
    config = CodecConfig(weights="auto", mel=SMALL.__dict__)
    assert config.mel == SMALL and config.train_frames_needed() == SMALL.max_fit_frames
    assert isinstance(config.build(clips), MelCodec)
    assert CodecConfig(weights="pretrained").train_frames_needed() == 0
    assert isinstance(load_codec("mel", init_audio=clips, mel=SMALL), MelCodec)


@pytest.mark.slow
def test_round_trip_keeps_speech_intelligible_to_the_offline_asr():
    import torchaudio

    from bark_kedro.audio import espeak
    from bark_kedro.audio.demo_corpus import load_demo_sentences
    from bark_kedro.evaluation.intelligibility import PocketSphinxRecognizer, error_rates

    def speak(text, voice):
        audio, rate = espeak.synthesize(text, voice)
        return torchaudio.functional.resample(torch.from_numpy(audio), rate, SR).numpy()

    sentences = load_demo_sentences()
    voices = ["en-us+m3", "en-us+f2"]
    train = [speak(t, voices[k % 2]) for k, t in enumerate(sentences[:24])]
    codec = MelCodec.fit(train, MelCodecConfig(max_fit_frames=8000, kmeans_iters=8))
    asr = PocketSphinxRecognizer()
    original, round_trip = [], []
    for k, text in enumerate(sentences[-4:]):
        audio = speak(text, voices[k % 2])
        decoded = codec.decode(codec.encode(audio))
        original.append(error_rates(text, asr.transcribe(audio, SR))["cer"])
        round_trip.append(error_rates(text, asr.transcribe(decoded, SR))["cer"])
    assert np.mean(round_trip) <= np.mean(original) + 0.15, (original, round_trip)
