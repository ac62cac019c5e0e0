import numpy as np
import pytest
import soundfile as sf

from bark_kedro.audio import validation
from bark_kedro.audio.validation import (
    REASON_CODES,
    RejectedInput,
    Rejection,
    check_duration,
    check_file,
    check_samples,
    check_transcript,
    duplicate_rejections,
    load_valid_audio,
    validate_audio_file,
)
from tests.audio.bad_corpus import tone

LIMITS = {"min_duration_s": 0.3, "max_duration_s": 2.0, "silence_threshold_dbfs": -60.0}


def code(path) -> str | None:
    rejection = validate_audio_file(path, **LIMITS)
    return None if rejection is None else rejection.code


def write(path, samples, sr=16_000, subtype="PCM_16"):
    sf.write(path, samples, sr, subtype=subtype)
    return path


def test_valid_file_passes_and_is_returned_decoded(tmp_path):
    path = write(tmp_path / "ok.wav", tone(0.5, 16_000, 200, channels=2))
    assert code(path) is None
    audio, sr = load_valid_audio(path, **LIMITS)
    assert sr == 16_000
    assert audio.shape == (2, 8_000)


def test_missing_file_and_folder(tmp_path):
    assert code(tmp_path / "absent.wav") == "missing_file"
    assert code(tmp_path) == "missing_file"
    assert check_file("").code == "missing_file"
    assert "absent.wav" in check_file(tmp_path / "absent.wav").detail


def test_empty_file(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    assert code(tmp_path / "empty.wav") == "empty_file"


def test_unreadable_file(tmp_path):
    (tmp_path / "junk.flac").write_bytes(b"not audio at all" * 8)
    rejection = validate_audio_file(tmp_path / "junk.flac", **LIMITS)
    assert rejection.code == "unreadable"
    assert "junk.flac" in str(rejection)


def test_truncated_wav(tmp_path):
    path = write(tmp_path / "cut.wav", tone(1.0, 16_000, 200))
    path.write_bytes(path.read_bytes()[:20_000])
    rejection = validate_audio_file(path, **LIMITS)
    assert rejection.code == "truncated"
    assert str(rejection).startswith("truncated: ")


def test_non_finite_samples(tmp_path):
    samples = tone(0.5, 16_000, 200)
    samples[100] = np.inf
    assert code(write(tmp_path / "inf.wav", samples, subtype="FLOAT")) == "non_finite"
    assert check_samples(np.array([np.nan, 0.1]), -60.0).code == "non_finite"


def test_silent_and_quiet(tmp_path):
    assert code(write(tmp_path / "zeros.wav", np.zeros(8_000, np.float32))) == "silent"
    quiet = tone(0.5, 16_000, 200) * 10 ** (-50 / 20)  # about -63 dBFS RMS
    assert code(write(tmp_path / "quiet.wav", quiet, subtype="FLOAT")) == "silent"
    assert code(write(tmp_path / "soft.wav", quiet * 10, subtype="FLOAT")) is None


def test_too_short_and_too_long(tmp_path):
    assert code(write(tmp_path / "short.wav", tone(0.2, 16_000, 200))) == "too_short"
    assert code(write(tmp_path / "long.wav", tone(2.5, 16_000, 200))) == "too_long"
    assert check_duration(0.3, 0.3, 2.0) is None  # bounds are inclusive
    assert check_duration(2.0, 0.3, 2.0) is None


def test_long_files_are_rejected_from_the_header_without_decoding(tmp_path, monkeypatch):
    path = write(tmp_path / "long.wav", np.zeros(8_000 * 60, np.int16), sr=8_000)

    def no_decoding(path):
        raise AssertionError("a too-long file must be rejected before decoding")

    monkeypatch.setattr(validation, "load_audio", no_decoding)
    assert code(path) == "too_long"


def test_empty_transcript():
    assert check_transcript(" \t\n ").code == "empty_transcript"
    assert check_transcript("") is not None
    assert check_transcript("你好") is None


def test_duplicates_keep_the_first_occurrence():
    out = duplicate_rejections(["a", "b", "a", "c", "b", "a"])
    assert [r.code if r else None for r in out] == [None, None] + ["duplicate_id"] + [None] + [
        "duplicate_id"
    ] * 2
    out = duplicate_rejections(["x", "x"], ids=["X", "x"])
    assert "'x' clashes with 'X' in row 0" in out[1].detail


def test_rejection_formats_and_exception():
    rejection = Rejection("silent", "too quiet")
    assert str(rejection) == "silent: too quiet"
    assert str(RejectedInput(rejection)) == "silent: too quiet"
    assert len(set(REASON_CODES)) == len(REASON_CODES) == 13


def test_load_valid_audio_raises_the_rejection(tmp_path):
    with pytest.raises(RejectedInput, match="missing_file") as info:
        load_valid_audio(tmp_path / "nope.wav", **LIMITS)
    assert info.value.rejection.code == "missing_file"
