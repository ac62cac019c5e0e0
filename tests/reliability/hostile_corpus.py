"""A hostile corpus: the inputs an adversarial new user gives ingestion (not a test module).

:func:`make_hostile_corpus` writes audio files and two manifests (CSV and JSONL) of the same
rows, and returns what ingestion must make of every row: kept (None) or rejected with a code.
:func:`make_hostile_manifests` writes files given as a manifest that are no manifest at all;
reading each must fail with a ValueError naming it.
"""

from __future__ import annotations

import csv
import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.audio.bad_corpus import make_bad_input_corpus, tone


@dataclass
class HostileCorpus:
    csv_manifest: Path
    jsonl_manifest: Path
    expected: dict[str, str | None]  # utterance id -> rejection code, None when kept
    texts: dict[str, str] = field(default_factory=dict)  # expected transcript of kept rows
    sockets: list[socket.socket] = field(default_factory=list)  # kept open while in use

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


def make_hostile_corpus(directory: str | Path) -> HostileCorpus:
    """Write the corpus under ``directory``; row ids are unique, so each row can be traced."""
    directory = Path(directory)
    base_manifest, expected = make_bad_input_corpus(directory / "base")
    rows: list[dict] = []
    with base_manifest.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            row["path"] = str(base_manifest.parent / row["path"])
            rows.append(row)
    expected = dict(expected)
    texts: dict[str, str] = {}
    audio = directory / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    corpus = HostileCorpus(directory / "hostile.csv", directory / "hostile.jsonl", expected, texts)

    def add(utt_id: str, path: str | Path, text, code: str | None, clean: str | None = None):
        rows.append({"id": utt_id, "path": str(path), "text": text, "speaker": "hostile"})
        expected[utt_id] = code
        if code is None and clean is not None:
            texts[utt_id] = clean

    def wav(name: str, samples: np.ndarray, rate: int = 16_000, subtype: str = "PCM_16") -> Path:
        sf.write(audio / name, samples, rate, subtype=subtype)
        return audio / name

    good = wav("good.wav", tone(0.6, 16_000, 200, 1, 11))
    add("name_too_long", audio / ("n" * 300 + ".wav"), "Long name.", "unreadable")
    add("path_too_long", "/".join(["p" * 200] * 25) + "/a.wav", "Deep path.", "unreadable")
    fifo = audio / "fifo.wav"
    os.mkfifo(fifo)
    add("fifo", fifo, "A pipe.", "not_a_file")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(audio / "socket.wav"))
    corpus.sockets.append(sock)
    add("socket", audio / "socket.wav", "A socket.", "not_a_file")
    add("dev_zero", "/dev/zero", "Endless zeros.", "not_a_file")
    add("folder", audio, "A folder.", "missing_file")
    (audio / "loop_a.wav").symlink_to(audio / "loop_b.wav")
    (audio / "loop_b.wav").symlink_to(audio / "loop_a.wav")
    add("symlink_loop", audio / "loop_a.wav", "Loop.", "unreadable")
    add("dc_only", wav("dc.wav", np.full(16_000, 0.5, np.float32), subtype="FLOAT"),
        "Only an offset.", "silent")
    square = np.sign(np.sin(np.linspace(0, 400 * np.pi, 16_000))).astype(np.float32)
    add("square", wav("square.wav", square, subtype="FLOAT"), "Beep.", "clipped")
    huge = np.stack([tone(0.6, 16_000, 190, 1, 12)[:, 0] * 1e38] * 2, axis=1)
    add("huge_floats", wav("huge.wav", huge, subtype="FLOAT"), "Very loud floats.", None,
        "Very loud floats.")
    add("dc_speech", wav("dc_speech.wav", tone(0.6, 16_000, 230, 1, 13) + 0.2, subtype="FLOAT"),
        "Speech on an offset.", None, "Speech on an offset.")
    add("ansi", good, "\x1b[31mRed\x1b[0m words.", None, "Red words.")
    add("bidi", good, "Left \u202eright\u202c words.", None, "Left right words.")
    add("osc_title", good, "Title\x1b]0;evil\x07 set.", None, "Title set.")
    add("only_controls", good, "\x1b[2J\x1b[H\u202e", "empty_transcript")
    add("null_path", "", "No path at all.", "missing_file")
    add("dup_case", good, "Clashes with dup_case.", None, "Clashes with dup_case.")
    add("DUP_CASE", good, "Clashes on a case-insensitive disk.", "duplicate_id")

    fields = ["id", "path", "text", "speaker"]
    with corpus.csv_manifest.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fields)
        writer.writeheader()
        writer.writerows(rows)
        f.write("too,many,fields,here,really\n")
        f.write("too_few\n")
    with corpus.jsonl_manifest.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.write("{broken json\n")
        f.write(json.dumps({"id": "no_text", "path": str(good)}) + "\n")
        f.write(json.dumps({"id": "nan_text", "path": str(good), "text": float("nan")}) + "\n")
        f.write(json.dumps({"id": "dict_text", "path": str(good), "text": {"a": 1}}) + "\n")
        f.write(json.dumps({"id": "number_text", "path": str(good), "text": 42}) + "\n")
        f.write(json.dumps(["not", "an", "object"]) + "\n")
    return corpus


BAD_MANIFEST_ROWS = {"csv": 2, "jsonl": 6}  # rows appended above that are bad_manifest_row


def make_hostile_manifests(directory: str | Path) -> dict[str, Path]:
    """Files posing as manifests: each must be refused with a message naming it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    made = {}

    def put(name: str, content: bytes) -> None:
        (directory / name).write_bytes(content)
        made[name] = directory / name

    put("empty.csv", b"")
    put("blank.jsonl", b"\n\n  \n")
    put("whitespace.csv", b"   \n\t\n")
    sf.write(directory / "audio.csv", tone(0.2, 16_000, 200, 1), 16_000, format="WAV")
    made["audio.csv"] = directory / "audio.csv"
    put("binary.jsonl", bytes(range(256)) * 4)
    put("latin1.csv", "path,text\na.wav,caf\xe9\n".encode("latin-1"))
    put("no_text_column.csv", b"path,words\na.wav,hello\n")
    put("manifest.txt", b"path,text\na.wav,hello\n")
    return made
