"""A tiny corpus of good and broken inputs for ingestion tests (not a test module itself).

Usage: ``from tests.audio.bad_corpus import make_bad_input_corpus``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

MANIFEST_NAME = "manifest.csv"


def tone(duration_s: float, sample_rate: int, freq: float, channels: int = 1, seed: int = 0):
    """A voiced-sounding test signal: a few harmonics under a smooth envelope, (samples, channels)."""
    t = np.arange(int(round(duration_s * sample_rate))) / sample_rate
    rng = np.random.default_rng(seed)
    wave = sum(np.sin(2 * np.pi * freq * k * t + rng.uniform(0, np.pi)) / k for k in (1, 2, 3))
    wave *= np.sqrt(np.clip(np.sin(np.pi * t / t[-1]), 0.0, None)) * 0.3
    columns = [wave * (1.0 - 0.4 * c) for c in range(channels)]  # channels differ in level
    return np.stack(columns, axis=1).astype(np.float32)


def make_bad_input_corpus(directory: Path) -> tuple[Path, dict[str, str | None]]:
    """Write the corpus and a CSV manifest (columns id, path, text, speaker) under ``directory``.

    Returns ``(manifest_path, expected)`` where ``expected`` maps each utterance id to the
    rejection code ingestion must give it (with the default IngestConfig), or None if valid.
    """
    directory = Path(directory)
    audio_dir = directory / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str, str, str]] = []  # id, relative path, text, speaker
    expected: dict[str, str | None] = {}

    def add(utt_id: str, name: str, text: str, code: str | None, speaker: str = "spk_a") -> None:
        rows.append((utt_id, f"audio/{name}", text, speaker))
        expected[utt_id] = code

    # Valid: 22.05 kHz stereo and 44.1 kHz mono, in WAV, FLAC and MP3.
    sf.write(audio_dir / "stereo_22k.wav", tone(0.8, 22_050, 180, 2, 1), 22_050, "PCM_16")
    add("stereo_22k_wav", "stereo_22k.wav", "The quick brown fox.", None)
    sf.write(audio_dir / "stereo_22k.flac", tone(0.6, 22_050, 220, 2, 2), 22_050)
    add("stereo_22k_flac", "stereo_22k.flac", "Jumps over\tthe lazy dog.", None, "spk_b")
    sf.write(audio_dir / "mono_44k.mp3", tone(0.7, 44_100, 150, 1, 3), 44_100, format="MP3")
    add("mono_44k_mp3", "mono_44k.mp3", "An MP3 utterance.", None, "spk_b")
    sf.write(audio_dir / "mono_44k.flac", tone(0.5, 44_100, 260, 1, 4), 44_100)
    add("mono_44k_flac", "mono_44k.flac", "A FLAC utterance.", None)
    sf.write(audio_dir / "chinese.wav", tone(0.6, 16_000, 200, 1, 5), 16_000, "PCM_16")
    add("chinese", "chinese.wav", "你好，世界。这是一个测试。", None, "spk_c")
    sf.write(audio_dir / "emoji.flac", tone(0.5, 24_000, 240, 1, 6), 24_000)
    add("emoji", "emoji.flac", "Hello there 👋🏽 family: 👨‍👩‍👧", None, "spk_c")

    # Broken ones, one defect each.
    good = tone(0.8, 22_050, 200, 1, 7)
    sf.write(audio_dir / "whole.wav", good, 22_050, "PCM_16")
    data = (audio_dir / "whole.wav").read_bytes()
    (audio_dir / "whole.wav").unlink()
    (audio_dir / "truncated.wav").write_bytes(data[: len(data) // 2])
    add("truncated", "truncated.wav", "Cut off in the middle.", "truncated")
    (audio_dir / "zero_bytes.wav").write_bytes(b"")
    add("zero_bytes", "zero_bytes.wav", "Nothing at all.", "empty_file")
    (audio_dir / "not_audio.wav").write_bytes(b"this is not a RIFF file, just some text\n" * 20)
    add("not_audio", "not_audio.wav", "Text posing as audio.", "unreadable")
    sf.write(audio_dir / "nan.wav", np.full(16_000, np.nan, np.float32), 16_000, "FLOAT")
    add("nan_samples", "nan.wav", "Not a number.", "non_finite")
    sf.write(audio_dir / "silence.wav", np.zeros(16_000, np.float32), 16_000, "PCM_16")
    add("silence", "silence.wav", "Pure silence.", "silent")
    sf.write(audio_dir / "short.wav", tone(0.1, 16_000, 200, 1, 8), 16_000, "PCM_16")
    add("too_short", "short.wav", "Blip.", "too_short")
    # Ten minutes of faint noise at 8 kHz: 9.6 MB, written in milliseconds, and it must be
    # rejected from its header alone.
    noise = np.random.default_rng(9).integers(-300, 301, size=8_000 * 600).astype(np.int16)
    sf.write(audio_dir / "ten_minutes.wav", noise, 8_000, "PCM_16")
    add("ten_minutes", "ten_minutes.wav", "A very long ramble.", "too_long")
    add("missing", "does_not_exist.wav", "Where did it go?", "missing_file")
    sf.write(audio_dir / "blank_text.wav", tone(0.5, 16_000, 210, 1, 10), 16_000, "PCM_16")
    add("blank_text", "blank_text.wav", " \t \u3000 \n ", "empty_transcript")

    manifest = directory / MANIFEST_NAME
    with manifest.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "path", "text", "speaker"])
        writer.writerows(rows)
    return manifest, expected
