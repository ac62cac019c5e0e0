"""Checks that decide whether an utterance is usable, each naming its failure with a stable code.

A rejection reads ``"<code>: <human detail>"``. The codes (see :data:`REASON_CODES`):

- ``duplicate_id``: the id (or its file name) was already taken by an earlier row; first wins.
- ``empty_transcript``: nothing is left of the transcript after normalization.
- ``missing_file``: no file at the path (or the path is a folder).
- ``empty_file``: the file has zero bytes.
- ``unreadable``: libsndfile cannot open or decode it.
- ``truncated``: a WAV whose header declares more sample data than the file holds (libsndfile
  would silently return the part that is there).
- ``too_short`` / ``too_long``: duration outside the configured range. The header's duration is
  checked before decoding, so a ten-minute file is rejected without reading its samples.
- ``non_finite``: NaN or infinite samples (possible in float WAVs).
- ``silent``: whole-file RMS below the silence threshold.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bark_kedro.audio.io import (
    AudioFileError,
    AudioInfo,
    TruncatedAudioError,
    audio_info,
    load_audio,
)
from bark_kedro.audio.processing import rms_dbfs

DUPLICATE_ID = "duplicate_id"
EMPTY_TRANSCRIPT = "empty_transcript"
MISSING_FILE = "missing_file"
EMPTY_FILE = "empty_file"
UNREADABLE = "unreadable"
TRUNCATED = "truncated"
TOO_SHORT = "too_short"
TOO_LONG = "too_long"
NON_FINITE = "non_finite"
SILENT = "silent"

REASON_CODES: tuple[str, ...] = (
    DUPLICATE_ID,
    EMPTY_TRANSCRIPT,
    MISSING_FILE,
    EMPTY_FILE,
    UNREADABLE,
    TRUNCATED,
    TOO_SHORT,
    TOO_LONG,
    NON_FINITE,
    SILENT,
)


@dataclass(frozen=True)
class Rejection:
    """Why an utterance was left out: a stable ``code`` and a human-readable ``detail``."""

    code: str
    detail: str

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


class RejectedInput(Exception):
    """Raised by :func:`load_valid_audio`; carries the :class:`Rejection`."""

    def __init__(self, rejection: Rejection):
        super().__init__(str(rejection))
        self.rejection = rejection


def check_transcript(text: str) -> Rejection | None:
    """``empty_transcript`` if ``text`` is empty or only whitespace."""
    if not str(text).strip():
        return Rejection(EMPTY_TRANSCRIPT, "transcript is empty or only whitespace")
    return None


def check_file(path: str | Path) -> Rejection | None:
    """``missing_file`` or ``empty_file`` from the file system alone."""
    if not str(path).strip():
        return Rejection(MISSING_FILE, "no audio path given")
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        return Rejection(MISSING_FILE, f"{str(path)!r} {what}")
    if path.stat().st_size == 0:
        return Rejection(EMPTY_FILE, f"{str(path)!r} has zero bytes")
    return None


def check_duration(
    duration_s: float, min_duration_s: float, max_duration_s: float
) -> Rejection | None:
    """``too_short`` / ``too_long`` when ``duration_s`` leaves ``[min_duration_s, max_duration_s]``."""
    if duration_s < min_duration_s:
        return Rejection(TOO_SHORT, f"{duration_s:.3f} s is shorter than {min_duration_s} s")
    if duration_s > max_duration_s:
        return Rejection(TOO_LONG, f"{duration_s:.3f} s is longer than {max_duration_s} s")
    return None


def check_samples(audio: np.ndarray, silence_threshold_dbfs: float) -> Rejection | None:
    """``non_finite`` for NaN/inf samples, ``silent`` when the RMS is below the threshold."""
    finite = np.isfinite(audio)
    if not finite.all():
        bad = int(audio.size - np.count_nonzero(finite))
        return Rejection(NON_FINITE, f"{bad} of {audio.size} samples are NaN or infinite")
    level = rms_dbfs(audio)
    if level < silence_threshold_dbfs:
        return Rejection(
            SILENT,
            f"RMS level {level:.1f} dBFS is below the {silence_threshold_dbfs} dBFS threshold",
        )
    return None


def read_header(path: str | Path) -> AudioInfo:
    """:func:`audio_info` with failures turned into ``unreadable`` / ``truncated`` rejections."""
    try:
        return audio_info(path)
    except TruncatedAudioError as err:
        raise RejectedInput(Rejection(TRUNCATED, str(err))) from err
    except AudioFileError as err:
        raise RejectedInput(Rejection(UNREADABLE, str(err))) from err


def load_valid_audio(
    path: str | Path,
    *,
    min_duration_s: float,
    max_duration_s: float,
    silence_threshold_dbfs: float,
) -> tuple[np.ndarray, int]:
    """Run every file check in order and return the decoded ``(channels, samples)`` audio and rate.

    Cheap checks come first (file system, then header and duration) so bad files are rejected
    before decoding. Raises :class:`RejectedInput` with the first failing check.
    """
    rejection = check_file(path)
    if rejection is not None:
        raise RejectedInput(rejection)
    info = read_header(path)
    rejection = check_duration(info.duration_s, min_duration_s, max_duration_s)
    if rejection is not None:
        raise RejectedInput(rejection)
    try:
        audio, sample_rate = load_audio(path)
    except TruncatedAudioError as err:
        raise RejectedInput(Rejection(TRUNCATED, str(err))) from err
    except AudioFileError as err:
        raise RejectedInput(Rejection(UNREADABLE, str(err))) from err
    # Compressed formats may only estimate their length in the header: check the decoded one too.
    rejection = check_duration(audio.shape[-1] / sample_rate, min_duration_s, max_duration_s)
    rejection = rejection or check_samples(audio, silence_threshold_dbfs)
    if rejection is not None:
        raise RejectedInput(rejection)
    return audio, sample_rate


def validate_audio_file(
    path: str | Path,
    *,
    min_duration_s: float,
    max_duration_s: float,
    silence_threshold_dbfs: float,
) -> Rejection | None:
    """The first failing file check for ``path``, or None when it is usable."""
    try:
        load_valid_audio(
            path,
            min_duration_s=min_duration_s,
            max_duration_s=max_duration_s,
            silence_threshold_dbfs=silence_threshold_dbfs,
        )
    except RejectedInput as rejected:
        return rejected.rejection
    return None


def duplicate_rejections(
    keys: Iterable[str], ids: Iterable[str] | None = None
) -> list[Rejection | None]:
    """``duplicate_id`` for every key seen before in the sequence (the first occurrence is kept).

    ``keys`` are what must be unique (e.g. casefolded file names); ``ids``, if given, are the
    original ids shown in the message.
    """
    keys = list(keys)
    ids = list(ids) if ids is not None else keys
    first_row: dict[str, int] = {}
    out: list[Rejection | None] = []
    for row, (key, utt_id) in enumerate(zip(keys, ids, strict=True)):
        if key in first_row:
            first = first_row[key]
            detail = f"{utt_id!r} clashes with {ids[first]!r} in row {first}, which is kept"
            out.append(Rejection(DUPLICATE_ID, detail))
        else:
            first_row[key] = row
            out.append(None)
    return out
