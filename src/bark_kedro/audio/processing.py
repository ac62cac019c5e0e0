"""Signal conversions: channel mixdown, resampling, peak and loudness normalization.

Arrays are float32, either ``(samples,)`` or ``(channels, samples)``; time is the last axis.
"""

from __future__ import annotations

from math import gcd

import numpy as np
from scipy.signal import resample_poly


def db_to_amplitude(dbfs: float) -> float:
    """Linear amplitude of a level in dB relative to full scale."""
    return float(10.0 ** (dbfs / 20.0))


def rms_dbfs(audio: np.ndarray) -> float:
    """Root-mean-square level of all samples in dBFS (``-inf`` for digital silence)."""
    audio = np.asarray(audio, dtype=np.float64)
    if audio.size == 0:
        return float("-inf")
    rms = float(np.sqrt(np.mean(np.square(audio))))
    return 20.0 * np.log10(rms) if rms > 0 else float("-inf")


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Average the channels of ``(channels, samples)`` into ``(samples,)``; 1-D passes through.

    The mean is taken in float64, so samples near float32's limit do not overflow to inf.
    """
    audio = np.asarray(audio)
    if audio.ndim == 1:
        return audio.astype(np.float32, copy=False)
    if audio.ndim != 2 or audio.shape[0] == 0:
        raise ValueError(
            f"expected (samples,) or (channels, samples) audio, got shape {audio.shape}"
        )
    return audio.mean(axis=0, dtype=np.float64).astype(np.float32)


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample along the last axis with a polyphase filter (:func:`scipy.signal.resample_poly`).

    The ratio ``target_sr / orig_sr`` is reduced by its gcd (22 050 -> 24 000 is up 160, down
    147), so the output has ``ceil(n * target_sr / orig_sr)`` samples.
    """
    if orig_sr <= 0 or target_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {target_sr}")
    audio = np.asarray(audio, dtype=np.float32)
    if orig_sr == target_sr:
        return audio.copy()
    g = gcd(int(orig_sr), int(target_sr))
    out = resample_poly(audio, int(target_sr) // g, int(orig_sr) // g, axis=-1)
    return out.astype(np.float32, copy=False)


def trim_silence(audio: np.ndarray, sample_rate: int, top_db: float = 40.0,
                 margin_s: float = 0.05, frame_s: float = 0.01) -> np.ndarray:
    """``audio`` without its leading and trailing silence: the frames (``frame_s`` long) more
    than ``top_db`` below the loudest frame's RMS are cut from both ends, ``margin_s`` of them
    kept before the first and after the last louder frame (as ``librosa.effects.trim`` does).
    Silence inside the clip stays; audio with no louder frame comes back unchanged."""
    audio = np.asarray(audio, dtype=np.float32)
    frame = max(1, int(round(frame_s * sample_rate)))
    n = audio.shape[-1] // frame
    if n == 0:
        return audio
    frames = audio[..., : n * frame].reshape(*audio.shape[:-1], n, frame).astype(np.float64)
    power = np.mean(np.square(frames), axis=tuple(range(frames.ndim - 2)) + (-1,))
    if not np.any(power > 0):
        return audio
    loud = np.flatnonzero(power >= power.max() * 10.0 ** (-top_db / 10.0))
    margin = int(round(margin_s * sample_rate))
    start = max(0, loud[0] * frame - margin)
    end = audio.shape[-1] if loud[-1] == n - 1 else min(audio.shape[-1],
                                                         (loud[-1] + 1) * frame + margin)
    return audio[..., start:end]


def peak_normalize(audio: np.ndarray, peak_dbfs: float = -1.0) -> np.ndarray:
    """Scale so the largest absolute sample sits at ``peak_dbfs``.

    Raises ValueError for all-zero or non-finite audio, which cannot be normalized.
    """
    audio = np.asarray(audio, dtype=np.float32)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if not np.isfinite(peak):
        raise ValueError("cannot peak-normalize audio with NaN or infinite samples")
    if peak == 0.0:
        raise ValueError("cannot peak-normalize digital silence (all samples are zero)")
    return (audio * np.float32(db_to_amplitude(peak_dbfs) / peak)).astype(np.float32)


def integrated_loudness(audio: np.ndarray, sample_rate: int) -> float:
    """ITU-R BS.1770-4 integrated loudness in LUFS, measured with ``pyloudnorm``.

    Clips shorter than the standard 400 ms gating block are measured as one block covering the
    whole clip. Returns ``-inf`` when everything falls below the -70 LUFS absolute gate.
    """
    import pyloudnorm  # imported here: only loudness normalization needs it

    audio = np.asarray(audio, dtype=np.float64)
    n = audio.shape[-1]
    if n == 0:
        return float("-inf")
    block_s = min(0.4, n / sample_rate)
    meter = pyloudnorm.Meter(sample_rate, block_size=block_s)
    return float(meter.integrated_loudness(audio.T))  # pyloudnorm wants (samples, channels)


def loudness_normalize(
    audio: np.ndarray, sample_rate: int, target_lufs: float = -23.0, peak_dbfs: float = -1.0
) -> np.ndarray:
    """Scale to ``target_lufs`` integrated loudness (BS.1770-4), never letting peaks pass ``peak_dbfs``.

    If reaching the target would push a sample above ``peak_dbfs``, the gain is lowered so the
    peak sits exactly there (the result is then quieter than the target rather than clipped).
    Raises ValueError for audio too quiet to measure (below the -70 LUFS gate) or non-finite.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if not np.all(np.isfinite(audio)):
        raise ValueError("cannot loudness-normalize audio with NaN or infinite samples")
    loudness = integrated_loudness(audio, sample_rate)
    if not np.isfinite(loudness):
        raise ValueError("cannot loudness-normalize audio below the -70 LUFS gate (silence)")
    gain = db_to_amplitude(target_lufs - loudness)
    peak = float(np.max(np.abs(audio)))
    ceiling = db_to_amplitude(peak_dbfs)
    if peak * gain > ceiling:
        gain = ceiling / peak
    return (audio * np.float32(gain)).astype(np.float32)
