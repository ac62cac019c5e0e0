"""Readers that list a corpus on disk as one table of utterances.

Every reader returns a DataFrame with string columns ``utterance_id``, ``speaker``, ``text`` (the
raw transcript) and ``source_path``, one row per utterance, in a deterministic order. Readers only
list: they do not open audio and do not judge it (a missing file or a repeated id is reported by
the ingestion, so nothing vanishes silently).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

SOURCE_COLUMNS = ["utterance_id", "speaker", "text", "source_path"]


def _frame(rows: list[dict[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=SOURCE_COLUMNS).astype(str)


def read_ljspeech(root: str | Path) -> pd.DataFrame:
    """LJSpeech layout: ``metadata.csv`` lines ``id|text|normalized_text`` and ``wavs/<id>.wav``.

    The normalized transcript (numbers spelled out) is used where present, else the raw one.
    All utterances belong to the speaker ``"ljspeech"``.
    """
    root = Path(root)
    metadata = root / "metadata.csv"
    if not metadata.is_file():
        raise FileNotFoundError(f"LJSpeech metadata not found: {str(metadata)!r}")
    rows = []
    with metadata.open(encoding="utf-8", newline="") as f:
        for line_no, fields in enumerate(csv.reader(f, delimiter="|", quoting=csv.QUOTE_NONE), 1):
            if not fields:
                continue
            if len(fields) not in (2, 3):
                raise ValueError(
                    f"{str(metadata)!r} line {line_no}: expected 'id|text|normalized_text', "
                    f"got {len(fields)} fields"
                )
            utt_id, text = fields[0].strip(), fields[1]
            if len(fields) == 3 and fields[2].strip():
                text = fields[2]
            rows.append(
                {
                    "utterance_id": utt_id,
                    "speaker": "ljspeech",
                    "text": text,
                    "source_path": str(root / "wavs" / f"{utt_id}.wav"),
                }
            )
    return _frame(rows)


def read_libritts(root: str | Path) -> pd.DataFrame:
    """LibriTTS layout: ``<root>/<speaker>/<chapter>/<utt>.wav`` next to ``<utt>.normalized.txt``.

    The speaker is the first folder name. A wav without its transcript file is kept with an
    empty text, so the ingestion reports it as ``empty_transcript``.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"LibriTTS folder not found: {str(root)!r}")
    wavs = sorted(root.glob("*/*/*.wav"))
    if not wavs:
        raise ValueError(
            f"no LibriTTS utterances under {str(root)!r}: expected <speaker>/<chapter>/<utt>.wav"
        )
    rows = []
    for wav in wavs:
        transcript = wav.with_name(f"{wav.stem}.normalized.txt")
        text = transcript.read_text(encoding="utf-8") if transcript.is_file() else ""
        rows.append(
            {
                "utterance_id": wav.stem,
                "speaker": wav.relative_to(root).parts[0],
                "text": text,
                "source_path": str(wav),
            }
        )
    return _frame(rows)


def _manifest_records(path: Path) -> list[dict]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
        return frame.to_dict("records")
    if suffix == ".jsonl":
        records = []
        with path.open(encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{str(path)!r} line {line_no}: invalid JSON ({err})") from err
                if not isinstance(record, dict):
                    raise ValueError(f"{str(path)!r} line {line_no}: expected a JSON object")
                records.append(record)
        return records
    raise ValueError(f"unsupported manifest {str(path)!r}: expected a .csv or .jsonl file")


def read_manifest(path: str | Path) -> pd.DataFrame:
    """A ``.csv`` or ``.jsonl`` manifest with columns ``path``, ``text`` and optional ``speaker``/``id``.

    ``speaker`` defaults to ``"unknown"`` and ``id`` to the audio file's stem. Relative audio
    paths are taken relative to the manifest's folder.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: {str(path)!r}")
    records = _manifest_records(path)
    if records:
        missing = [c for c in ("path", "text") if c not in records[0]]
        if missing:
            raise ValueError(f"manifest {str(path)!r} lacks required column(s) {missing}")
    rows = []
    for row_no, record in enumerate(records, 1):
        if "path" not in record or "text" not in record:
            raise ValueError(f"manifest {str(path)!r} entry {row_no} lacks 'path' or 'text'")
        audio = str(record["path"] if record["path"] is not None else "").strip()
        source = (
            ""
            if not audio
            else str(Path(audio) if Path(audio).is_absolute() else path.parent / audio)
        )
        utt_id = record.get("id")
        speaker = record.get("speaker")
        rows.append(
            {
                "utterance_id": str(utt_id).strip()
                if utt_id not in (None, "")
                else Path(audio).stem,
                "speaker": str(speaker).strip() if speaker not in (None, "") else "unknown",
                "text": "" if record["text"] is None else str(record["text"]),
                "source_path": source,
            }
        )
    return _frame(rows)


READERS: dict[str, Callable[[str | Path], pd.DataFrame]] = {
    "ljspeech": read_ljspeech,
    "libritts": read_libritts,
    "manifest": read_manifest,
}


def read_source(kind: str, path: str | Path) -> pd.DataFrame:
    """Dispatch to the reader for ``kind`` (one of :data:`READERS`)."""
    try:
        reader = READERS[kind]
    except KeyError:
        raise ValueError(
            f"unknown source kind {kind!r}; valid kinds are {sorted(READERS)}"
        ) from None
    return reader(path)
