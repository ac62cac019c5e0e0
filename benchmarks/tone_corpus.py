"""A synthetic corpus for the tokenization benchmarks: gliding tones written at 16 and 24 kHz
like ingest writes them, and the same corpus repeated under new utterance ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf


def tone(seconds: float, sample_rate: int, seed: int) -> np.ndarray:
    """A gliding tone with a little noise (speech-like enough to give varied frames)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    f0 = 150 + 120 * np.sin(2 * np.pi * (1.3 + seed % 7) * t)
    wave = 0.3 * np.sin(2 * np.pi * np.cumsum(f0) / sample_rate) * (0.6 + 0.4 * np.sin(7 * t))
    return (wave + 0.02 * rng.normal(size=t.size)).astype(np.float32)


def write_tone_corpus(folder: Path, n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` utterances, log-normal durations around 4 s (1-12 s), every 8th in validation."""
    rng = np.random.default_rng(seed)
    durations = np.clip(rng.lognormal(np.log(4.0), 0.5, n), 1.0, 12.0).round(2)
    words = ["hello", "world", "quiet", "hills", "the", "quick", "fox", "lame", "dog"]
    rows = []
    for i, seconds in enumerate(durations):
        paths = {}
        for rate in (16_000, 24_000):
            path = folder / str(rate) / f"t{i:05d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, tone(float(seconds), rate, seed=i), rate, subtype="FLOAT")
            paths[rate] = str(path)
        text = " ".join(rng.choice(words, size=int(2 + seconds)))
        rows.append({"utterance_id": f"t{i:05d}", "speaker": f"s{i % 4}", "text": text,
                     "duration_s": float(seconds), "audio_24k_path": paths[24_000],
                     "audio_16k_path": paths[16_000],
                     "split": "validation" if i % 8 == 7 else "train", "source_path": "-"})
    return pd.DataFrame(rows)


def repeated(utterances: pd.DataFrame, times: int) -> pd.DataFrame:
    """The corpus ``times`` over (the same audio files, new utterance ids)."""
    copies = [utterances.assign(utterance_id=utterances["utterance_id"] + f"-{k}")
              for k in range(times)]
    return pd.concat(copies, ignore_index=True)
