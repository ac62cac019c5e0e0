"""Checks that decide whether an utterance is usable, each naming its failure with a stable code.

A rejection reads ``"<code>: <human detail>"``. The codes (see :data:`REASON_CODES`):

- ``bad_manifest_row``: the manifest line itself cannot be read (malformed JSON, wrong number of
  fields, no ``text``, a transcript that is not a string); the detail gives the line number.
- ``duplicate_id``: the id (or its file name) was already taken by an earlier row; first wins.
- ``empty_transcript``: nothing is left of the transcript after normalization.
- ``missing_file``: no file at the path (or the path is a folder).
- ``not_a_file``: the path is a named pipe, socket or device, not a regular file.
- ``empty_file``: the file has zero bytes.
- ``unreadable``: libsndfile cannot open or decode it, or the system refuses the path (any
  ``OSError``: a name too long, no permission, an I/O error).
- ``truncated``: a WAV whose header declares more sample data than the file holds (libsndfile
  would silently return the part that is there).
- ``too_short`` / ``too_long``: duration outside the configured range. The header's duration is
  checked before decoding, so a ten-minute file is rejected without reading its samples.
- ``non_finite``: NaN or infinite samples (possible in float WAVs).
- ``silent``: whole-file RMS below the silence threshold, measured after removing the DC offset
  (a constant level is not sound).
- ``clipped``: more than :data:`MAX_PEAK_FRACTION` of the samples sit at the peak level: a
  square wave or audio clipped flat, not speech.
"""

from __future__ import annotations

import os
import stat
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

BAD_MANIFEST_ROW = "bad_manifest_row"
DUPLICATE_ID = "duplicate_id"
EMPTY_TRANSCRIPT = "empty_transcript"
MISSING_FILE = "missing_file"
NOT_A_FILE = "not_a_file"
EMPTY_FILE = "empty_file"
UNREADABLE = "unreadable"
TRUNCATED = "truncated"
TOO_SHORT = "too_short"
TOO_LONG = "too_long"
NON_FINITE = "non_finite"
SILENT = "silent"
CLIPPED = "clipped"
MAX_PEAK_FRACTION = 0.1  # a full-scale sine has 2.8 % of its samples within 0.1 % of the peak

REASON_CODES: tuple[str, ...] = (
    BAD_MANIFEST_ROW,
    DUPLICATE_ID,
    EMPTY_TRANSCRIPT,
    MISSING_FILE,
    NOT_A_FILE,
    EMPTY_FILE,
    UNREADABLE,
    TRUNCATED,
    TOO_SHORT,
    TOO_LONG,
    NON_FINITE,
    SILENT,
    CLIPPED,
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


_SPECIAL_FILES = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def check_file(path: str | Path) -> Rejection | None:
    """``missing_file``, ``not_a_file``, ``empty_file`` or ``unreadable`` from the file system
    alone; any ``OSError`` (a name too long, no permission) is this file's rejection."""
    if not str(path).strip():
        return Rejection(MISSING_FILE, "no audio path given")
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return Rejection(MISSING_FILE, f"{str(path)!r} does not exist")
    except NotADirectoryError:
        return Rejection(MISSING_FILE, f"{str(path)!r} does not exist (a parent is a file)")
    except (OSError, ValueError) as err:  # ValueError: an embedded NUL byte
        return Rejection(UNREADABLE, f"{str(path)[:200]!r}: {getattr(err, 'strerror', None) or err}")
    if stat.S_ISDIR(info.st_mode):
        return Rejection(MISSING_FILE, f"{str(path)!r} is a folder, not a file")
    for is_kind, what in _SPECIAL_FILES:
        if is_kind(info.st_mode):
            return Rejection(NOT_A_FILE, f"{str(path)!r} is {what}, not a regular file")
    if info.st_size == 0:
        return Rejection(EMPTY_FILE, f"{str(path)!r} has zero bytes")
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as err:
        return Rejection(UNREADABLE, f"{str(path)!r}: {err.strerror or err}")
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
    """``non_finite`` for NaN/inf samples, ``silent`` when the RMS without the DC offset is
    below the threshold, ``clipped`` when a large share of samples sits at the peak level."""
    finite = np.isfinite(audio)
    if not finite.all():
        bad = int(audio.size - np.count_nonzero(finite))
        return Rejection(NON_FINITE, f"{bad} of {audio.size} samples are NaN or infinite")
    centred = np.asarray(audio, np.float64)
    centred = centred - centred.mean(axis=-1, keepdims=True)
    level = rms_dbfs(centred)
    if level < silence_threshold_dbfs:
        return Rejection(
            SILENT,
            f"RMS level {level:.1f} dBFS (DC offset removed) is below the "
            f"{silence_threshold_dbfs} dBFS threshold",
        )
    magnitude = np.abs(centred)
    at_peak = float(np.mean(magnitude >= 0.999 * magnitude.max()))
    if at_peak > MAX_PEAK_FRACTION:
        return Rejection(
            CLIPPED,
            f"{at_peak:.0%} of samples sit at the peak level (a square wave or clipped audio)",
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
    except OSError as err:
        raise RejectedInput(Rejection(UNREADABLE, f"{str(path)!r}: {err.strerror or err}")) from err


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
    except OSError as err:
        raise RejectedInput(Rejection(UNREADABLE, f"{str(path)!r}: {err.strerror or err}")) from err
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
