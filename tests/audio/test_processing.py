import math

import numpy as np
import pytest

from bark_kedro.audio.processing import (
    db_to_amplitude,
    integrated_loudness,
    loudness_normalize,
    peak_normalize,
    resample,
    rms_dbfs,
    to_mono,
    trim_silence,
)


def sine(freq: float, sample_rate: int, duration_s: float = 0.5, amplitude: float = 0.5):
    t = np.arange(int(duration_s * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_hz(signal: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(signal.size)))
    peak = int(np.argmax(spectrum))
    # parabolic interpolation between bins for sub-bin accuracy
    a, b, c = np.log(spectrum[peak - 1 : peak + 2] + 1e-12)
    offset = 0.5 * (a - c) / (a - 2 * b + c)
    return float((peak + offset) * sample_rate / signal.size)


def test_to_mono_averages_channels_and_passes_mono_through():
    stereo = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5]], np.float32)
    np.testing.assert_allclose(to_mono(stereo), [0.5, 0.5, 0.5])
    mono = np.array([0.1, 0.2], np.float32)
    np.testing.assert_array_equal(to_mono(mono), mono)
    assert to_mono(stereo).dtype == np.float32
    with pytest.raises(ValueError, match="shape"):
        to_mono(np.zeros((2, 2, 2)))


@pytest.mark.parametrize(
    ("orig_sr", "target_sr"),
    [(22_050, 24_000), (22_050, 16_000), (44_100, 16_000), (8_000, 24_000)],
)
def test_resample_keeps_frequency_and_scales_length(orig_sr, target_sr):
    signal = sine(440.0, orig_sr)
    out = resample(signal, orig_sr, target_sr)
    assert out.dtype == np.float32
    assert out.shape == (math.ceil(signal.size * target_sr / orig_sr),)
    assert dominant_hz(out, target_sr) == pytest.approx(440.0, abs=1.0)
    # the tone's level survives (away from the filter's edge effects)
    middle = out[out.size // 4 : -out.size // 4]
    assert np.max(np.abs(middle)) == pytest.approx(0.5, abs=0.01)


def test_resample_works_on_the_last_axis_of_multichannel_audio():
    stereo = np.stack([sine(300.0, 22_050), sine(500.0, 22_050)])
    out = resample(stereo, 22_050, 16_000)
    assert out.shape == (2, math.ceil(stereo.shape[1] * 16_000 / 22_050))
    assert dominant_hz(out[0], 16_000) == pytest.approx(300.0, abs=1.0)
    assert dominant_hz(out[1], 16_000) == pytest.approx(500.0, abs=1.0)


def test_resample_identity_and_bad_rates():
    signal = sine(440.0, 16_000)
    same = resample(signal, 16_000, 16_000)
    np.testing.assert_array_equal(same, signal)
    assert same is not signal
    with pytest.raises(ValueError, match="positive"):
        resample(signal, 0, 16_000)


def test_rms_dbfs():
    assert rms_dbfs(sine(1000.0, 16_000, amplitude=1.0)) == pytest.approx(-3.01, abs=0.01)
    assert rms_dbfs(np.zeros(10)) == float("-inf")


def test_peak_normalize_sets_the_peak():
    out = peak_normalize(sine(200.0, 16_000, amplitude=0.1), -1.0)
    assert np.max(np.abs(out)) == pytest.approx(db_to_amplitude(-1.0), rel=1e-6)
    assert db_to_amplitude(-1.0) == pytest.approx(0.891, abs=1e-3)
    with pytest.raises(ValueError, match="silence"):
        peak_normalize(np.zeros(100), -1.0)
    with pytest.raises(ValueError, match="NaN"):
        peak_normalize(np.array([0.1, np.nan]), -1.0)


def test_loudness_normalize_reaches_the_target():
    signal = sine(1000.0, 24_000, duration_s=1.0, amplitude=0.05)
    out = loudness_normalize(signal, 24_000, target_lufs=-23.0, peak_dbfs=-1.0)
    assert integrated_loudness(out, 24_000) == pytest.approx(-23.0, abs=0.05)
    # BS.1770: a 1 kHz sine reads about 3 dB below its peak level
    assert 20 * np.log10(np.max(np.abs(out))) == pytest.approx(-20.0, abs=0.2)


def test_loudness_normalize_caps_peaks_and_measures_short_clips():
    short = sine(1000.0, 16_000, duration_s=0.3, amplitude=0.05)  # below the 400 ms block
    out = loudness_normalize(short, 16_000, target_lufs=-1.0, peak_dbfs=-1.0)
    assert np.max(np.abs(out)) == pytest.approx(db_to_amplitude(-1.0), rel=1e-5)
    assert integrated_loudness(out, 16_000) == pytest.approx(-4.0, abs=0.1)
    with pytest.raises(ValueError, match="gate"):
        loudness_normalize(np.zeros(16_000, np.float32), 16_000)


def test_trim_silence_cuts_the_edges_only_and_keeps_a_margin():
    rate = 16_000
    gap = np.zeros(rate // 4, np.float32)
    speech = np.concatenate([sine(300, rate, 0.3), gap, sine(300, rate, 0.3)])
    clip = np.concatenate([np.zeros(rate, np.float32), speech, np.zeros(rate // 2, np.float32)])
    out = trim_silence(clip, rate, top_db=40.0, margin_s=0.05)
    assert len(out) == pytest.approx(len(speech) + 2 * 0.05 * rate, abs=2 * rate // 100)
    assert np.count_nonzero(out == 0) >= len(gap)  # the pause inside stays
    np.testing.assert_array_equal(trim_silence(np.zeros(800, np.float32), rate), np.zeros(800))
    stereo = trim_silence(np.stack([clip, clip]), rate)
    assert stereo.shape == (2, len(out))
    quiet_tail = np.concatenate([speech, sine(300, rate, 0.2, amplitude=0.5 * 10 ** (-50 / 20))])
    assert len(trim_silence(quiet_tail, rate, top_db=40.0, margin_s=0.0)) == pytest.approx(
        len(speech), abs=rate // 100)
