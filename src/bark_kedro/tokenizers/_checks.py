"""Input checks shared by the audio tokenizers."""

from __future__ import annotations

import numpy as np


def mono_float32(audio: np.ndarray, name: str = "audio") -> np.ndarray:
    """``audio`` as a 1-D float32 array; a (1, n) or (n, 1) array is squeezed.

    Raises a ValueError naming ``name`` for other shapes, empty audio, or NaN/inf samples.
    """
    x = np.asarray(audio)
    if x.ndim == 2 and 1 in x.shape:
        x = x.reshape(-1)
    if x.ndim != 1:
        raise ValueError(f"{name} must be mono 1-D audio, got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{name} must hold float samples in [-1, 1], got dtype {x.dtype}")
    x = x.astype(np.float32, copy=False)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite samples")
    return x


def check_sample_rate(sample_rate: int, expected: int, name: str = "audio") -> None:
    """Raise if ``sample_rate`` is not the rate the tokenizer works at."""
    if int(sample_rate) != expected:
        raise ValueError(f"{name} must be sampled at {expected} Hz, got {sample_rate} Hz; "
                         f"resample it first")
