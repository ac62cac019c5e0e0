"""Synthetic audio for the tokenizer tests: gliding tones, a small written corpus, and the
shape of a tiny HuBERT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

CORPUS_TEXTS = ["hello world", "the quick fox", "a lame dog", "quiet hills", "zebra! ünïcode"]
CORPUS_SPLITS = ["train", "train", "train", "train", "validation"]
CORPUS_DURATIONS = [1.0, 1.3, 0.9, 1.6, 0.7]

# HUBERT_BASE's architecture (same conv stack, so the same 320-sample hop), shrunk
TINY_HUBERT = {
    "extractor_mode": "group_norm",
    "extractor_conv_layer_config": [(16, 10, 5)] + [(16, 3, 2)] * 4 + [(16, 2, 2)] * 2,
    "extractor_conv_bias": False, "encoder_embed_dim": 32, "encoder_projection_dropout": 0.0,
    "encoder_pos_conv_kernel": 16, "encoder_pos_conv_groups": 4, "encoder_num_layers": 3,
    "encoder_num_heads": 2, "encoder_attention_dropout": 0.0, "encoder_ff_interm_features": 64,
    "encoder_ff_interm_dropout": 0.0, "encoder_dropout": 0.0, "encoder_layer_norm_first": False,
    "encoder_layer_drop": 0.0, "aux_num_out": None,
}


def tone(seconds: float, sample_rate: int, seed: int = 0) -> np.ndarray:
    """A gliding tone with a little noise: speech-like enough to give varied frames."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    f0 = 150 + 120 * np.sin(2 * np.pi * (1.3 + seed) * t)
    wave = 0.3 * np.sin(2 * np.pi * np.cumsum(f0) / sample_rate) * (0.6 + 0.4 * np.sin(7 * t))
    return (wave + 0.02 * rng.normal(size=t.size)).astype(np.float32)


def write_corpus(folder: Path, durations=CORPUS_DURATIONS, texts=CORPUS_TEXTS,
                 splits=CORPUS_SPLITS) -> pd.DataFrame:
    """An ``utterances`` table of gliding tones, written at 16 and 24 kHz like ingest does."""
    rows = []
    for i, (seconds, text, split) in enumerate(zip(durations, texts, splits, strict=True)):
        paths = {}
        for rate in (16_000, 24_000):
            path = folder / f"{rate}" / f"u{i}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, tone(seconds, rate, seed=i), rate, subtype="FLOAT")
            paths[rate] = str(path)
        rows.append({"utterance_id": f"u{i}", "speaker": f"s{i % 2}", "text": text,
                     "duration_s": seconds, "audio_24k_path": paths[24_000],
                     "audio_16k_path": paths[16_000], "split": split, "source_path": "-"})
    return pd.DataFrame(rows)


def write_corpus_with_rejects(folder: Path) -> pd.DataFrame:
    """:func:`write_corpus` with one text reject (row 3, empty text) and one codec reject
    (row 1, an unreadable WAV)."""
    table = write_corpus(folder)
    table.loc[3, "text"] = ""
    with open(table.loc[1, "audio_24k_path"], "wb") as f:
        f.write(b"RIFF not really a wav")
    return table
