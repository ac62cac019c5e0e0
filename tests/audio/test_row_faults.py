"""One bad row never sinks a corpus: every fault of one file or manifest line is that row's
rejection, and a manifest that is not a manifest at all is named."""

import errno
import json
import os
import socket
import stat

import numpy as np
import pytest
import soundfile as sf

from bark_kedro.atomic_files import disk_full_error
from bark_kedro.audio.ingest import IngestConfig, ingest_utterances, normalize_transcript
from bark_kedro.audio.io import write_audio_atomic
from bark_kedro.audio.processing import to_mono
from bark_kedro.audio.sources import read_manifest
from bark_kedro.audio.validation import check_file, check_samples
from tests.audio.bad_corpus import tone


def good_wav(path, seed=0):
    sf.write(path, tone(0.6, 16_000, 200, 1, seed), 16_000, "PCM_16")
    return path


def ingest(tmp_path, manifest):
    return ingest_utterances(read_manifest(manifest), tmp_path / "out", IngestConfig(),
                             progress=False)


def codes(rejected):
    return {row.utterance_id: row.reason.split(":")[0] for row in rejected.itertuples()}


def test_jsonl_bad_lines_are_per_row_rejects_with_line_numbers(tmp_path):
    good_wav(tmp_path / "a.wav")
    lines = [
        json.dumps({"path": "a.wav", "text": "kept"}),
        "{not json",
        json.dumps({"path": "a.wav"}),
        '{"path": "a.wav", "text": NaN, "id": "nan_text"}',
        json.dumps({"path": "a.wav", "text": {"a": 1}, "id": "dict_text"}),
        json.dumps(["a list"]),
    ]
    (tmp_path / "m.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    utterances, rejected = ingest(tmp_path, tmp_path / "m.jsonl")
    assert utterances["text"].tolist() == ["kept"]
    reasons = rejected["reason"].tolist()
    assert len(reasons) == 5
    assert all(r.startswith("bad_manifest_row: m.jsonl line ") for r in reasons)
    assert [r.split("line ")[1].split(":")[0] for r in reasons] == ["2", "3", "4", "5", "6"]
    assert "'text' is a float" in reasons[2] and "'text' is a dict" in reasons[3]


def test_csv_rows_with_wrong_field_counts_are_rejects(tmp_path):
    good_wav(tmp_path / "a.wav")
    (tmp_path / "m.csv").write_text("path,text\na.wav,ok\na.wav,too,many\nb.wav\n",
                                    encoding="utf-8")
    utterances, rejected = ingest(tmp_path, tmp_path / "m.csv")
    assert len(utterances) == 1
    assert [r.split(":")[0] for r in rejected["reason"]] == ["bad_manifest_row"] * 2
    assert "line 3" in rejected["reason"].iloc[0] and "line 4" in rejected["reason"].iloc[1]


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"", "is empty"), (b"\n \n", "is empty"), (b"RIFF\x00\x00\x00\x00WAVEfmt ", "binary"),
     (b"path,text\n\xff\xfe\xfa,x\n", "not UTF-8")],
)
def test_a_manifest_that_is_not_text_is_named(tmp_path, content, problem):
    (tmp_path / "m.csv").write_bytes(content)
    with pytest.raises(ValueError, match=rf"m\.csv.*{problem}"):
        read_manifest(tmp_path / "m.csv")


def test_any_oserror_on_one_file_is_that_rows_reject(tmp_path):
    good_wav(tmp_path / "a.wav")
    long_name = "x" * 300 + ".wav"
    deep = "/".join(["d" * 200] * 25) + "/a.wav"  # over PATH_MAX
    (tmp_path / "m.csv").write_text(
        f"id,path,text\nok,a.wav,fine\nlong,{long_name},too long\ndeep,{deep},too deep\n",
        encoding="utf-8")
    utterances, rejected = ingest(tmp_path, tmp_path / "m.csv")
    assert utterances["utterance_id"].tolist() == ["ok"]
    assert codes(rejected) == {"long": "unreadable", "deep": "unreadable"}
    assert "too long" in rejected["reason"].iloc[0].lower()


def test_special_files_are_named_as_what_they_are(tmp_path):
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    assert check_file(fifo).code == "not_a_file" and "named pipe" in check_file(fifo).detail
    sock_path = tmp_path / "s.wav"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        assert "a socket" in check_file(sock_path).detail
    assert "character device" in check_file("/dev/zero").detail
    assert check_file(tmp_path / "absent.wav").code == "missing_file"


def test_dc_offset_and_square_wave_are_not_speech():
    assert check_samples(np.full((1, 16_000), 0.5, np.float32), -60.0).code == "silent"
    square = np.sign(np.sin(np.linspace(0, 200 * np.pi, 16_000))).astype(np.float32)[None]
    assert check_samples(square, -60.0).code == "clipped"
    sine = np.sin(np.linspace(0, 200 * np.pi, 16_000)).astype(np.float32)[None]
    assert check_samples(sine, -60.0) is None
    assert check_samples(tone(0.6, 16_000, 200, 1).T + 0.3, -60.0) is None  # speech on a DC


def test_huge_float_samples_mix_to_mono_without_overflow():
    stereo = np.full((2, 8), 3e38, np.float32)
    mono = to_mono(stereo)
    assert np.all(np.isfinite(mono)) and np.allclose(mono, 3e38)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [("\x1b[31mred\x1b[0m text", "red text"), ("[31m stays? \x1b[1;32mno", "[31m stays? no"),
     ("left \u202eright\u202c end", "left right end"), ("a\u2066b\u2069c\u200fd", "abcd"),
     ("title\x1b]0;evil\x07 here", "title here"), ("\x9b31mC1", "C1"),
     ("family 👨\u200d👩\u200d👧", "family 👨\u200d👩\u200d👧")],
)
def test_control_sequences_are_stripped_whole(raw, clean):
    assert normalize_transcript(raw) == clean


def test_written_wavs_respect_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        path = write_audio_atomic(tmp_path / "a.wav", np.zeros(100, np.float32), 16_000)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_full_disk_names_the_file_and_the_device(tmp_path):
    err = disk_full_error(tmp_path / "x.wav", OSError(errno.ENOSPC, "No space left"))
    assert err.errno == errno.ENOSPC
    assert "x.wav" in str(err) and "no space left on device" in str(err)
    assert "mounted at" in str(err)
    assert disk_full_error(tmp_path / "x.wav", ValueError("other")) is None
