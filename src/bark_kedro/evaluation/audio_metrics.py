"""Audio metrics comparing a synthesized utterance with its reference (both 24 kHz).

Definitions:

- **Mel-cepstrum**: torchaudio's power mel spectrogram, natural log of the mel *amplitude*
  (``0.5 * ln(power)``, floored), then an orthonormal DCT-II (``torchaudio.functional.create_dct``)
  rescaled by ``1 / sqrt(2 * n_mels)`` so the coefficients follow the cepstrum convention
  ``log|X| = c0 + 2 * sum_k c_k cos(...)`` that the MCD formula assumes. ``c0`` (overall
  loudness) is excluded: a gain difference is not a spectral-shape error, and the usual MCD
  leaves it out. With every other coefficient kept, the per-frame MCD equals ``10 / ln 10``
  times the standard deviation over mel bins of the log-amplitude difference. The hop is 320
  samples, so mel-cepstral frames and 75 Hz EnCodec frames share one time grid. Values are
  comparable between runs of this project, not with SPTK/WORLD mel-cepstra in papers.
- **MCD** (dB): per aligned frame pair ``10 / ln 10 * sqrt(2 * sum_k (c_k - c'_k)^2)``, averaged
  over the DTW path (Euclidean frame distance as the DTW cost).
- **Duration ratio**: synthesized seconds / reference seconds.
- **Codec-token accuracy**: for every pair ``(i, j)`` of the DTW path, whether synthesized code
  frame ``i`` equals reference frame ``j``, averaged over the path per codebook
  (``codec_token_accuracy_cb{k}``) and over codebooks (``codec_token_accuracy``). Mel frame
  indices map to codec frames one to one (clipped to the last codec frame: centred mel framing
  yields one extra frame when the length is a multiple of the hop). Two unrelated code
  streams score about ``1 / codebook_size``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torchaudio
from scipy.spatial.distance import cdist

from bark_kedro.evaluation.dtw import dtw
from bark_kedro.tokenizers._checks import check_sample_rate, mono_float32
from bark_kedro.tokenizers.frames import CODEC_HOP, CODEC_SAMPLE_RATE, codec_frame_count

_DB_PER_NEPER = 10.0 / math.log(10.0)
MAX_CODEC_FRAME_MISMATCH = 2  # codes may differ from ceil(samples / hop) by this many frames


@dataclass(frozen=True)
class MelCepstrumConfig:
    """Analysis settings of :func:`mel_cepstrum` (defaults: 25 ms window, 75 Hz frames)."""

    n_fft: int = 1024
    win_length: int = 600
    hop_length: int = CODEC_HOP
    n_mels: int = 80
    n_coeffs: int = 24  # c1 .. c24
    amplitude_floor: float = 1e-5  # -100 dB; keeps digital silence finite

    def __post_init__(self) -> None:
        if not 1 <= self.n_coeffs < self.n_mels:
            raise ValueError(f"n_coeffs must be in [1, n_mels={self.n_mels}), got {self.n_coeffs}")
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length ({self.win_length}) must be <= n_fft ({self.n_fft})")


DEFAULT_MEL_CEPSTRUM = MelCepstrumConfig()


@lru_cache(maxsize=8)
def _mel_transform(config: MelCepstrumConfig, sample_rate: int) -> torchaudio.transforms.MelSpectrogram:
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate, n_fft=config.n_fft, win_length=config.win_length,
        hop_length=config.hop_length, n_mels=config.n_mels, power=2.0, center=True)


def log_mel_amplitude(audio: np.ndarray, sample_rate: int = CODEC_SAMPLE_RATE,
                      config: MelCepstrumConfig = DEFAULT_MEL_CEPSTRUM, name: str = "audio"
                      ) -> np.ndarray:
    """``(frames, n_mels)`` natural log of the mel amplitude of mono float ``audio``.

    ``frames = 1 + len(audio) // hop_length`` (centred frames). ``name`` labels errors.
    """
    x = mono_float32(audio, name)
    frames = 1 + len(x) // config.hop_length
    if len(x) <= config.n_fft // 2:  # reflect padding needs more samples than it pads
        x = np.pad(x, (0, config.n_fft // 2 + 1 - len(x)))
    with torch.no_grad():
        power = _mel_transform(config, int(sample_rate))(torch.from_numpy(x))
    power = power.double().T[:frames]
    return (0.5 * torch.log(power.clamp_min(config.amplitude_floor**2))).numpy()


def mel_cepstrum(audio: np.ndarray, sample_rate: int = CODEC_SAMPLE_RATE,
                 config: MelCepstrumConfig = DEFAULT_MEL_CEPSTRUM, name: str = "audio"
                 ) -> np.ndarray:
    """``(frames, n_coeffs)`` mel-cepstral coefficients c1..c_n of 24 kHz ``audio`` (c0 dropped)."""
    check_sample_rate(sample_rate, CODEC_SAMPLE_RATE, name)
    log_mel = log_mel_amplitude(audio, sample_rate, config, name)
    dct = torchaudio.functional.create_dct(config.n_coeffs + 1, config.n_mels, "ortho").double()
    cepstrum = log_mel @ dct.numpy() / math.sqrt(2 * config.n_mels)
    return cepstrum[:, 1:]


def mel_cepstral_distortion(synth_mcep: np.ndarray, ref_mcep: np.ndarray,
                            path: np.ndarray | None = None) -> float:
    """Mean MCD in dB over aligned frame pairs ``path`` (``(length, 2)`` indices ``(i, j)``).

    Without ``path`` the frames are compared index by index over the shorter length (no
    alignment), the baseline DTW improves on.
    """
    synth_mcep, ref_mcep = _check_mcep(synth_mcep, "synth_mcep"), _check_mcep(ref_mcep, "ref_mcep")
    if synth_mcep.shape[1] != ref_mcep.shape[1]:
        raise ValueError(f"synth_mcep has {synth_mcep.shape[1]} coefficients but ref_mcep has "
                         f"{ref_mcep.shape[1]}")
    if path is None:
        shorter = min(len(synth_mcep), len(ref_mcep))
        path = np.repeat(np.arange(shorter)[:, None], 2, axis=1)
    diff = synth_mcep[path[:, 0]] - ref_mcep[path[:, 1]]
    per_frame = _DB_PER_NEPER * np.sqrt(2.0 * np.sum(diff**2, axis=1))
    return float(np.mean(per_frame))


def align_mel_cepstra(synth_mcep: np.ndarray, ref_mcep: np.ndarray) -> np.ndarray:
    """DTW path ``(length, 2)`` aligning synthesized with reference frames (Euclidean cost)."""
    synth_mcep, ref_mcep = _check_mcep(synth_mcep, "synth_mcep"), _check_mcep(ref_mcep, "ref_mcep")
    return dtw(cdist(synth_mcep, ref_mcep)).path


def duration_ratio(synth_audio: np.ndarray, ref_audio: np.ndarray) -> float:
    """Synthesized duration / reference duration (same sample rate)."""
    return len(mono_float32(synth_audio, "synth_audio")) / len(mono_float32(ref_audio, "ref_audio"))


def codec_token_accuracy(synth_codes: np.ndarray, ref_codes: np.ndarray,
                         path: np.ndarray | None = None) -> dict[str, float]:
    """Fraction of equal codes per codebook and overall over frame pairs ``path``.

    Codes are ``(n_codebooks, n_frames)`` integer matrices. ``path`` pairs ``(i, j)`` index
    synthesized and reference frames; indices past the last frame are clipped to it. Without a
    path both must have the same number of frames and are compared frame by frame.
    """
    synth_codes = _check_codes(synth_codes, "synth_codes")
    ref_codes = _check_codes(ref_codes, "ref_codes")
    if synth_codes.shape[0] != ref_codes.shape[0]:
        raise ValueError(f"synth_codes has {synth_codes.shape[0]} codebooks but ref_codes has "
                         f"{ref_codes.shape[0]}")
    if path is None:
        if synth_codes.shape[1] != ref_codes.shape[1]:
            raise ValueError(f"without a path synth_codes ({synth_codes.shape[1]} frames) and "
                             f"ref_codes ({ref_codes.shape[1]} frames) must have equal lengths")
        path = np.repeat(np.arange(synth_codes.shape[1])[:, None], 2, axis=1)
    synth_frames = np.minimum(path[:, 0], synth_codes.shape[1] - 1)
    ref_frames = np.minimum(path[:, 1], ref_codes.shape[1] - 1)
    per_codebook = np.mean(synth_codes[:, synth_frames] == ref_codes[:, ref_frames], axis=1)
    result = {"codec_token_accuracy": float(per_codebook.mean())}
    result.update({f"codec_token_accuracy_cb{k}": float(a) for k, a in enumerate(per_codebook)})
    return result


def compare_utterance(synth_audio: np.ndarray, ref_audio: np.ndarray, synth_codes: np.ndarray,
                      ref_codes: np.ndarray, sample_rate: int = CODEC_SAMPLE_RATE,
                      config: MelCepstrumConfig = DEFAULT_MEL_CEPSTRUM) -> dict[str, float]:
    """All metrics of one utterance: ``mcd_db``, ``duration_ratio``, the two durations in seconds
    and the codec-token accuracies, the latter at the frames the mel-cepstral DTW aligns.

    ``synth_codes`` / ``ref_codes`` are the EnCodec codes the two waveforms decode from (or
    encode to). Raises a ValueError naming the bad input.
    """
    if int(sample_rate) != CODEC_SAMPLE_RATE:
        raise ValueError(f"sample_rate must be {CODEC_SAMPLE_RATE} Hz (the codec's rate), got "
                         f"{sample_rate} Hz; resample synth_audio and ref_audio first")
    synth = mono_float32(synth_audio, "synth_audio")
    ref = mono_float32(ref_audio, "ref_audio")
    for name, codes, audio in (("synth_codes", synth_codes, synth), ("ref_codes", ref_codes, ref)):
        frames, expected = _check_codes(codes, name).shape[1], codec_frame_count(len(audio))
        if abs(frames - expected) > MAX_CODEC_FRAME_MISMATCH:
            raise ValueError(f"{name} has {frames} frames but its audio of {len(audio)} samples "
                             f"has {expected}: codes and audio do not belong together")
    synth_mcep = mel_cepstrum(synth, sample_rate, config, "synth_audio")
    ref_mcep = mel_cepstrum(ref, sample_rate, config, "ref_audio")
    path = align_mel_cepstra(synth_mcep, ref_mcep)
    return {
        "mcd_db": mel_cepstral_distortion(synth_mcep, ref_mcep, path),
        "duration_ratio": len(synth) / len(ref),
        "synth_duration_s": len(synth) / sample_rate,
        "ref_duration_s": len(ref) / sample_rate,
        **codec_token_accuracy(synth_codes, ref_codes, path),
    }


def summarize(per_utterance: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """``{metric}_mean`` and ``{metric}_median`` over utterances, plus ``n_utterances``.

    Non-finite values are left out of a metric's statistics; a metric with none is omitted.
    """
    if not per_utterance:
        raise ValueError("per_utterance is empty: nothing to summarize")
    names = list(dict.fromkeys(name for metrics in per_utterance for name in metrics))
    summary: dict[str, float] = {"n_utterances": float(len(per_utterance))}
    for name in names:
        values = np.array([m[name] for m in per_utterance if name in m], dtype=np.float64)
        values = values[np.isfinite(values)]
        if values.size:
            summary[f"{name}_mean"] = float(values.mean())
            summary[f"{name}_median"] = float(np.median(values))
    return summary


def _check_mcep(mcep: np.ndarray, name: str) -> np.ndarray:
    mcep = np.asarray(mcep, dtype=np.float64)
    if mcep.ndim != 2 or mcep.shape[0] == 0 or mcep.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty (frames, coefficients) matrix, "
                         f"got shape {mcep.shape}")
    return mcep


def _check_codes(codes: np.ndarray, name: str) -> np.ndarray:
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.size == 0:
        raise ValueError(f"{name} must be a non-empty (n_codebooks, n_frames) matrix, "
                         f"got shape {codes.shape}")
    if not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"{name} must hold integer codes, got dtype {codes.dtype}")
    if codes.min() < 0:
        raise ValueError(f"{name} holds negative codes (min {codes.min()})")
    return codes
