"""Audio metrics on synthetic signals whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bark_kedro.evaluation.audio_metrics import (
    MelCepstrumConfig,
    align_mel_cepstra,
    codec_token_accuracy,
    compare_utterance,
    duration_ratio,
    log_mel_amplitude,
    mel_cepstral_distortion,
    mel_cepstrum,
    summarize,
)

SR = 24_000
HOP = 320


def tones(freqs, seconds, seed=0):
    """Consecutive sine tones with a little noise, float32 at 24 kHz."""
    pieces = [np.sin(2 * np.pi * f * np.arange(int(s * SR)) / SR)
              for f, s in zip(freqs, seconds, strict=True)]
    audio = 0.3 * np.concatenate(pieces)
    audio += 0.003 * np.random.default_rng(seed).standard_normal(len(audio))
    return audio.astype(np.float32)


def codes_for(audio, seed):
    frames = math.ceil(len(audio) / HOP)
    return np.random.default_rng(seed).integers(0, 1024, (8, frames), dtype=np.int16)


@pytest.fixture(scope="module")
def speech_like():
    return tones([220, 330, 523, 784, 440], [0.3, 0.25, 0.3, 0.2, 0.35])


def test_mel_cepstrum_shape_excludes_c0(speech_like):
    mcep = mel_cepstrum(speech_like, SR)
    assert mcep.shape == (1 + len(speech_like) // HOP, MelCepstrumConfig().n_coeffs)
    # c0 is the mean log level: scaling the audio changes only c0, which is left out
    np.testing.assert_allclose(mel_cepstrum(0.5 * speech_like, SR), mcep, atol=1e-4)


def test_mcd_with_all_coefficients_is_the_spread_of_the_log_spectral_difference():
    """Parseval: with c1..c(n_mels-1) kept, per-frame MCD = 10/ln10 * std over mel bins."""
    config = MelCepstrumConfig(n_mels=40, n_coeffs=39)
    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal(SR // 2).astype(np.float32) * 0.1 for _ in range(2))
    diff = log_mel_amplitude(a, SR, config) - log_mel_amplitude(b, SR, config)
    expected = np.mean(10 / np.log(10) * diff.std(axis=1))
    mcd = mel_cepstral_distortion(mel_cepstrum(a, SR, config), mel_cepstrum(b, SR, config))
    assert mcd == pytest.approx(expected, rel=1e-6)


def test_mcd_is_zero_for_identical_audio_and_grows_with_noise(speech_like):
    metrics = compare_utterance(speech_like, speech_like, codes_for(speech_like, 0),
                                codes_for(speech_like, 0), SR)
    assert metrics["mcd_db"] == 0.0
    rng = np.random.default_rng(2)
    noise = rng.standard_normal(len(speech_like)).astype(np.float32)
    ref_mcep = mel_cepstrum(speech_like, SR)
    mcds = [mel_cepstral_distortion(mel_cepstrum(speech_like + level * noise, SR), ref_mcep)
            for level in (0.003, 0.03, 0.3)]
    assert 0.0 < mcds[0] < mcds[1] < mcds[2]


def test_dtw_follows_a_non_uniform_time_stretch():
    freqs = [220, 330, 523, 784, 440]
    ref_seconds = [0.3, 0.3, 0.3, 0.3, 0.3]
    synth_seconds = [0.15, 0.45, 0.2, 0.4, 0.3]
    ref, synth = tones(freqs, ref_seconds, seed=3), tones(freqs, synth_seconds, seed=4)
    ref_mcep, synth_mcep = mel_cepstrum(ref, SR), mel_cepstrum(synth, SR)
    path = align_mel_cepstra(synth_mcep, ref_mcep)

    def tone_of(frames, seconds):
        return np.searchsorted(np.cumsum(seconds), frames * HOP / SR, side="right")

    same_tone = tone_of(path[:, 0], synth_seconds) == tone_of(path[:, 1], ref_seconds)
    assert same_tone.mean() > 0.95
    aligned = mel_cepstral_distortion(synth_mcep, ref_mcep, path)
    unaligned = mel_cepstral_distortion(synth_mcep, ref_mcep)
    # the only error left after alignment is the noise: as far as between two noisy takes
    noise_floor = mel_cepstral_distortion(mel_cepstrum(tones(freqs, ref_seconds, seed=5), SR),
                                          ref_mcep)
    assert aligned < 1.1 * noise_floor
    assert unaligned > 1.5 * aligned
    assert compare_utterance(synth, ref, codes_for(synth, 0), codes_for(ref, 1),
                             SR)["mcd_db"] == pytest.approx(aligned)


def test_duration_ratio():
    ref, synth = np.zeros(SR, np.float32), np.zeros(SR * 3 // 2, np.float32)
    assert duration_ratio(synth, ref) == pytest.approx(1.5)
    metrics = compare_utterance(synth, ref, codes_for(synth, 0), codes_for(ref, 0), SR)
    assert metrics["duration_ratio"] == pytest.approx(1.5)
    assert metrics["synth_duration_s"] == pytest.approx(1.5)
    assert metrics["ref_duration_s"] == pytest.approx(1.0)


def test_codec_accuracy_of_identical_and_unrelated_codes():
    rng = np.random.default_rng(5)
    ref = rng.integers(0, 1024, (8, 4000))
    same = codec_token_accuracy(ref.copy(), ref)
    assert same["codec_token_accuracy"] == 1.0
    assert [same[f"codec_token_accuracy_cb{k}"] for k in range(8)] == [1.0] * 8
    unrelated = codec_token_accuracy(rng.integers(0, 1024, (8, 4000)), ref)
    assert 0.2 / 1024 < unrelated["codec_token_accuracy"] < 3 / 1024


def test_codec_accuracy_per_codebook_and_along_a_path():
    ref = np.arange(2 * 6).reshape(2, 6)
    synth = ref.copy()
    synth[1] = -ref[1] + 100  # second codebook never matches
    result = codec_token_accuracy(synth, ref)
    assert result["codec_token_accuracy_cb0"] == 1.0
    assert result["codec_token_accuracy_cb1"] == 0.0
    assert result["codec_token_accuracy"] == 0.5
    # synthesized frames played twice as slowly; the last path index is clipped to frame 5
    slow = np.repeat(ref, 2, axis=1)
    path = np.array([(i, i // 2) for i in range(12)] + [(12, 6)])
    assert codec_token_accuracy(slow, ref, path)["codec_token_accuracy"] == 1.0


def test_summarize_mean_median_and_non_finite_values():
    summary = summarize([{"mcd_db": 1.0, "x": np.nan}, {"mcd_db": 2.0}, {"mcd_db": 6.0}])
    assert summary == {"n_utterances": 3.0, "mcd_db_mean": 3.0, "mcd_db_median": 2.0}
    with pytest.raises(ValueError, match="per_utterance"):
        summarize([])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"synth_audio": np.zeros(0, np.float32)}, "synth_audio is empty"),
        ({"ref_audio": np.zeros((2, SR), np.float32)}, "ref_audio must be mono"),
        ({"ref_audio": np.full(SR, np.nan, np.float32)}, "ref_audio contains NaN"),
        ({"sample_rate": 16_000}, "sample_rate must be 24000 Hz"),
        ({"synth_codes": np.zeros((2, 75), np.int64)}, "synth_codes has 2 codebooks"),
        ({"ref_codes": np.zeros((8, 20), np.int64)}, "ref_codes has 20 frames"),
        ({"ref_codes": np.zeros((8, 75), np.float32)}, "ref_codes must hold integer"),
        ({"synth_codes": np.zeros(75, np.int64)}, "synth_codes must be a non-empty"),
    ],
)
def test_bad_inputs_name_the_input(change, message):
    audio = np.zeros(SR, np.float32)
    inputs = {"synth_audio": audio, "ref_audio": audio, "synth_codes": np.zeros((8, 75), np.int64),
              "ref_codes": np.zeros((8, 75), np.int64), "sample_rate": SR}
    with pytest.raises(ValueError, match=message):
        compare_utterance(**{**inputs, **change})
