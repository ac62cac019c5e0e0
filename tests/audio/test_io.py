import numpy as np
import pytest
import soundfile as sf

from bark_kedro.audio import io
from bark_kedro.audio.io import (
    AudioFileError,
    TruncatedAudioError,
    audio_info,
    load_audio,
    wav_truncation,
    write_audio_atomic,
)
from tests.audio.bad_corpus import tone


def dominant_hz(signal: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(signal.size)))
    return float(np.argmax(spectrum) * sample_rate / signal.size)


@pytest.mark.parametrize(
    ("suffix", "subtype"), [(".wav", "PCM_16"), (".wav", "FLOAT"), (".flac", None), (".mp3", None)]
)
def test_load_audio_reads_each_format_as_float32_channels_first(tmp_path, suffix, subtype):
    sr = 22_050
    stereo = np.stack(
        [np.sin(2 * np.pi * 441 * np.arange(sr // 2) / sr) * g for g in (0.5, 0.25)], 1
    )
    path = tmp_path / f"a{suffix}"
    sf.write(path, stereo, sr, subtype=subtype)

    audio, rate = load_audio(path)

    assert rate == sr
    assert audio.dtype == np.float32
    assert audio.shape[0] == 2
    if suffix == ".mp3":  # lossy, with encoder delay: check the content, not the samples
        assert abs(audio.shape[1] - sr // 2) < 0.1 * sr
        assert dominant_hz(audio[0], sr) == pytest.approx(441, abs=3)
        assert np.max(np.abs(audio[0])) == pytest.approx(0.5, abs=0.05)
    else:
        assert audio.shape[1] == sr // 2
        np.testing.assert_allclose(audio, stereo.T, atol=1e-4)


def test_audio_info_reads_the_header_without_decoding(tmp_path, monkeypatch):
    path = tmp_path / "long.wav"
    sf.write(path, np.zeros(8_000 * 30, np.int16), 8_000, "PCM_16")

    def no_decoding(*args, **kwargs):
        raise AssertionError("audio_info must not decode samples")

    monkeypatch.setattr(sf, "read", no_decoding)
    info = audio_info(path)
    assert (info.sample_rate, info.channels, info.frames) == (8_000, 1, 240_000)
    assert info.duration_s == pytest.approx(30.0)
    assert info.format == "WAV"


def test_truncated_wav_is_detected_although_libsndfile_reads_it(tmp_path):
    path = tmp_path / "t.wav"
    sf.write(path, tone(0.5, 16_000, 200), 16_000, "PCM_16")
    assert wav_truncation(path) is None
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 1000])

    assert sf.read(path)[0].shape[0] > 0  # the reason for the check: libsndfile does not fail
    assert "declares 16000 bytes but only 15000 remain" in wav_truncation(path)
    with pytest.raises(TruncatedAudioError, match="t.wav"):
        load_audio(path)
    with pytest.raises(TruncatedAudioError, match="ends early"):
        audio_info(path)


def test_wav_truncation_ignores_other_formats(tmp_path):
    flac = tmp_path / "a.flac"
    sf.write(flac, tone(0.3, 16_000, 200), 16_000)
    text = tmp_path / "b.wav"
    text.write_text("hello")
    assert wav_truncation(flac) is None
    assert wav_truncation(text) is None


def test_unreadable_files_raise_with_the_path(tmp_path):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"\x00\x01 not audio " * 10)
    with pytest.raises(AudioFileError, match="garbage.wav"):
        load_audio(garbage)
    with pytest.raises(AudioFileError, match="garbage.wav"):
        audio_info(garbage)
    with pytest.raises(AudioFileError, match="nope.flac"):
        load_audio(tmp_path / "nope.flac")


def test_write_audio_atomic_round_trips_float32_exactly(tmp_path):
    audio = (np.random.default_rng(0).standard_normal((2, 1000)) * 0.1).astype(np.float32)
    target = tmp_path / "sub" / "x.wav"
    assert write_audio_atomic(target, audio, 24_000) == target
    back, sr = load_audio(target)
    assert sr == 24_000
    np.testing.assert_array_equal(back, audio)
    assert sf.info(target).subtype == "FLOAT"
    assert [p.name for p in target.parent.iterdir()] == ["x.wav"]

    write_audio_atomic(tmp_path / "mono.flac", audio[0], 16_000)
    assert sf.info(tmp_path / "mono.flac").channels == 1


def test_write_audio_atomic_leaves_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "x.wav"
    write_audio_atomic(target, np.full(100, 0.5, np.float32), 16_000)
    before = target.read_bytes()

    def broken_write(file, data, *args, **kwargs):
        with open(file, "wb") as f:
            f.write(b"RIFF half")
        raise OSError("disk full")

    monkeypatch.setattr(io.sf, "write", broken_write)
    with pytest.raises(OSError, match="disk full"):
        write_audio_atomic(target, np.zeros(100, np.float32), 16_000)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["x.wav"]


def test_write_audio_atomic_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="NaN"):
        write_audio_atomic(tmp_path / "n.wav", np.array([0.0, np.nan], np.float32), 16_000)
    with pytest.raises(ValueError, match="format"):
        write_audio_atomic(tmp_path / "n.xyz", np.zeros(10, np.float32), 16_000)
    with pytest.raises(ValueError, match="channels"):
        write_audio_atomic(tmp_path / "n.wav", np.zeros((1, 2, 3), np.float32), 16_000)
