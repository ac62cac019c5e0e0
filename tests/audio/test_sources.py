import json
from pathlib import Path

import pytest

from bark_kedro.audio.sources import (
    SOURCE_COLUMNS,
    read_libritts,
    read_ljspeech,
    read_manifest,
    read_source,
)


def test_read_ljspeech_prefers_the_normalized_text(tmp_path):
    (tmp_path / "metadata.csv").write_text(
        "LJ001-0001|Printing, in 1840|Printing, in eighteen forty\n"
        'LJ001-0002|He said "hi"|\n'  # quotes are literal and an empty normalized text falls back
        "LJ001-0003|Two fields only\n",
        encoding="utf-8",
    )
    frame = read_ljspeech(tmp_path)
    assert list(frame.columns) == SOURCE_COLUMNS
    assert frame["utterance_id"].tolist() == ["LJ001-0001", "LJ001-0002", "LJ001-0003"]
    assert frame["text"].tolist() == [
        "Printing, in eighteen forty",
        'He said "hi"',
        "Two fields only",
    ]
    assert set(frame["speaker"]) == {"ljspeech"}
    assert frame["source_path"][0] == str(tmp_path / "wavs" / "LJ001-0001.wav")


def test_read_ljspeech_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="metadata.csv"):
        read_ljspeech(tmp_path)
    (tmp_path / "metadata.csv").write_text("a|b|c|d\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 1"):
        read_ljspeech(tmp_path)


def test_read_libritts_walks_speaker_and_chapter_folders(tmp_path):
    for speaker, chapter, utt, text in [
        ("84", "121123", "84_121123_000007_000001", "Hello there."),
        ("84", "121123", "84_121123_000008_000000", None),  # transcript file missing
        ("1034", "7", "1034_7_000001_000000", "Second speaker."),
    ]:
        folder = tmp_path / speaker / chapter
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{utt}.wav").write_bytes(b"")
        if text is not None:
            (folder / f"{utt}.normalized.txt").write_text(text, encoding="utf-8")
            (folder / f"{utt}.original.txt").write_text("ignored", encoding="utf-8")
    (tmp_path / "stray.wav").write_bytes(b"")  # not in the layout: ignored

    frame = read_libritts(tmp_path).set_index("utterance_id")
    assert sorted(frame.index) == [
        "1034_7_000001_000000",
        "84_121123_000007_000001",
        "84_121123_000008_000000",
    ]
    assert frame.loc["84_121123_000007_000001", "speaker"] == "84"
    assert frame.loc["1034_7_000001_000000", "speaker"] == "1034"
    assert frame.loc["84_121123_000007_000001", "text"] == "Hello there."
    assert frame.loc["84_121123_000008_000000", "text"] == ""
    assert Path(frame.loc["1034_7_000001_000000", "source_path"]).parent == tmp_path / "1034" / "7"


def test_read_libritts_empty_or_missing(tmp_path):
    with pytest.raises(ValueError, match="speaker"):
        read_libritts(tmp_path)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_libritts(tmp_path / "nowhere")


def test_read_manifest_csv_resolves_paths_and_fills_defaults(tmp_path):
    absolute = tmp_path / "elsewhere" / "b.flac"
    (tmp_path / "m.csv").write_text(
        f'path,text\nclips/a.wav,Hello\n{absolute},"Quoted, with comma"\n', encoding="utf-8"
    )
    frame = read_manifest(tmp_path / "m.csv")
    assert list(frame.columns) == SOURCE_COLUMNS
    assert frame["utterance_id"].tolist() == ["a", "b"]
    assert frame["speaker"].tolist() == ["unknown", "unknown"]
    assert frame["text"].tolist() == ["Hello", "Quoted, with comma"]
    assert frame["source_path"].tolist() == [str(tmp_path / "clips" / "a.wav"), str(absolute)]


def test_read_manifest_jsonl_with_ids_and_speakers(tmp_path):
    records = [
        {"path": "a.wav", "text": "你好", "speaker": "s1", "id": "first"},
        {"path": "b.wav", "text": "🎉 party", "speaker": None},
    ]
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    (tmp_path / "m.jsonl").write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    frame = read_manifest(tmp_path / "m.jsonl")
    assert frame["utterance_id"].tolist() == ["first", "b"]
    assert frame["speaker"].tolist() == ["s1", "unknown"]
    assert frame["text"].tolist() == ["你好", "🎉 party"]


def test_read_manifest_errors(tmp_path):
    (tmp_path / "m.csv").write_text("file,text\na.wav,hi\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"m.csv.*\['path'\]"):
        read_manifest(tmp_path / "m.csv")
    (tmp_path / "m.jsonl").write_text('{"path": "a.wav", "text": "x"}\n{oops\n', encoding="utf-8")
    frame = read_manifest(tmp_path / "m.jsonl")  # one bad line is that row's problem only
    assert frame["problem"].tolist() == ["", "m.jsonl line 2: invalid JSON (Expecting "
                                         "property name enclosed in double quotes at column 2)"]
    (tmp_path / "m.txt").write_text("x", encoding="utf-8")
    with pytest.raises(ValueError, match=r"\.csv or \.jsonl"):
        read_manifest(tmp_path / "m.txt")
    with pytest.raises(FileNotFoundError, match="absent.csv"):
        read_manifest(tmp_path / "absent.csv")


def test_read_source_dispatches_and_names_valid_kinds(tmp_path):
    (tmp_path / "m.csv").write_text("path,text\na.wav,hi\n", encoding="utf-8")
    assert read_source("manifest", tmp_path / "m.csv")["utterance_id"].tolist() == ["a"]
    with pytest.raises(ValueError, match=r"'vctk'.*\['libritts', 'ljspeech', 'manifest'\]"):
        read_source("vctk", tmp_path)
