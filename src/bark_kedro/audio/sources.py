"""Readers that list a corpus on disk as one table of utterances.

Every reader returns a DataFrame with string columns ``utterance_id``, ``speaker``, ``text`` (the
raw transcript) and ``source_path``, one row per utterance, in a deterministic order. Readers only
list: they do not open audio and do not judge it (a missing file or a repeated id is reported by
the ingestion, so nothing vanishes silently). A manifest row that cannot be parsed is listed
too, with the reason in an extra ``problem`` column.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

SOURCE_COLUMNS = ["utterance_id", "speaker", "text", "source_path"]
PROBLEM_COLUMN = "problem"  # optional: why a listed row cannot be read (ingestion rejects it)
_EXTRA = "\0extra"  # DictReader key for fields beyond the header


def _frame(rows: list[dict[str, str]]) -> pd.DataFrame:
    columns = SOURCE_COLUMNS + ([PROBLEM_COLUMN] if any(r.get(PROBLEM_COLUMN) for r in rows) else [])
    return pd.DataFrame(rows, columns=columns).astype(str)


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


def _manifest_text(path: Path) -> str:
    """The manifest as text; a binary, non-UTF-8 or empty file is a ValueError naming it."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ValueError(f"cannot read manifest {str(path)!r}: {err.strerror or err}") from err
    if not raw.strip():
        raise ValueError(f"manifest {str(path)!r} is empty: expected a header line and rows")
    if b"\0" in raw[:65536] or raw[:4] in (b"RIFF", b"fLaC", b"OggS", b"ID3\x03", b"ID3\x04"):
        raise ValueError(
            f"manifest {str(path)!r} is a binary file (an audio file?), not a text manifest"
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"manifest {str(path)!r} is not UTF-8 text (invalid byte at offset {err.start})"
        ) from err


def _csv_records(path: Path, text: str) -> list[tuple[int, dict | str]]:
    """``(line number, record or problem)`` per CSV row; a row with the wrong number of fields
    is a problem of that row only."""
    reader = csv.DictReader(io.StringIO(text, newline=""), restkey=_EXTRA, restval=None)
    header = reader.fieldnames or []
    missing = [c for c in ("path", "text") if c not in header]
    if missing:
        raise ValueError(f"manifest {str(path)!r} lacks required column(s) {missing}")
    out: list[tuple[int, dict | str]] = []
    try:
        for record in reader:
            line_no = reader.line_num
            if _EXTRA in record:
                out.append((line_no, f"{len(header) + len(record[_EXTRA])} fields, "
                                     f"header has {len(header)}"))
            elif any(value is None for value in record.values()):
                n = sum(value is not None for value in record.values())
                out.append((line_no, f"{n} fields, header has {len(header)}"))
            else:
                out.append((line_no, record))
    except csv.Error as err:  # e.g. a quote never closed: the rest of the file is one field
        out.append((reader.line_num, f"unparseable CSV ({err}); the rows after it are lost"))
    return out


def _jsonl_records(path: Path, text: str) -> list[tuple[int, dict | str]]:
    """``(line number, record or problem)`` per non-blank JSONL line."""
    out: list[tuple[int, dict | str]] = []
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            out.append((line_no, f"invalid JSON ({err.msg} at column {err.colno})"))
            continue
        if not isinstance(record, dict):
            out.append((line_no, f"expected a JSON object, got {type(record).__name__}"))
            continue
        out.append((line_no, record))
    return out


def _record_problem(record: dict) -> str | None:
    """Why a parsed record cannot be an utterance: a missing or non-string ``path``/``text``."""
    for key in ("path", "text"):
        if key not in record:
            return f"no {key!r} field"
        value = record[key]
        if value is not None and not isinstance(value, str):
            return f"{key!r} is a {type(value).__name__} ({value!r:.40}), not a string"
    return None


def read_manifest(path: str | Path) -> pd.DataFrame:
    """A ``.csv`` or ``.jsonl`` manifest with columns ``path``, ``text`` and optional ``speaker``/``id``.

    ``speaker`` defaults to ``"unknown"`` and ``id`` to the audio file's stem. Relative audio
    paths are taken relative to the manifest's folder. A row that cannot be read (malformed
    JSON, wrong number of CSV fields, no ``text``, a transcript that is not a string) is kept
    with its line number in the ``problem`` column, so ingestion rejects it as
    ``bad_manifest_row`` and the other rows go on. A manifest that is not text at all, is
    empty or lacks the required columns is a ValueError naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: {str(path)!r}")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl"):
        raise ValueError(f"unsupported manifest {str(path)!r}: expected a .csv or .jsonl file")
    text = _manifest_text(path)
    records = (_csv_records if suffix == ".csv" else _jsonl_records)(path, text)
    rows = []
    for line_no, record in records:
        problem = record if isinstance(record, str) else _record_problem(record)
        if problem is not None:
            rows.append({"utterance_id": f"{path.name}:{line_no}", "speaker": "unknown",
                         "text": "", "source_path": "",
                         PROBLEM_COLUMN: f"{path.name} line {line_no}: {problem}"})
            continue
        audio = (record["path"] or "").strip()
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
                "text": record["text"] or "",
                "source_path": source,
                PROBLEM_COLUMN: "",
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
