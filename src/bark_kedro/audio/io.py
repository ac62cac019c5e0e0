"""Reading and writing audio files with soundfile (libsndfile: WAV, FLAC, MP3, OGG, ...).

Arrays are float32 shaped ``(channels, samples)``. Every failure to read a file is raised as
:class:`AudioFileError` (or its subclass :class:`TruncatedAudioError`) naming the file.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from bark_kedro.atomic_files import atomic_path

_RIFF_UNKNOWN_SIZE = 0xFFFFFFFF  # streaming writers put this in the size fields


class AudioFileError(ValueError):
    """A file that cannot be read as audio; the message names the file and the problem."""


class TruncatedAudioError(AudioFileError):
    """A WAV file whose header promises more sample data than the file holds."""


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says, read without decoding the samples."""

    path: str
    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def wav_truncation(path: str | Path) -> str | None:
    """Describe how a RIFF/WAVE file is cut short, or return None if it is whole (or not a WAV).

    libsndfile silently reads the samples that are there when a WAV's ``data`` chunk declares
    more bytes than the file holds, so a download cut short would pass as a shorter clip; this
    walks the chunk headers to catch it. RF64 files and size fields marked unknown are trusted.
    """
    path = Path(path)
    file_size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            return None
        endian = "<" if head[:4] == b"RIFF" else ">"
        pos = 12
        while pos + 8 <= file_size:
            f.seek(pos)
            chunk_id, size = struct.unpack(endian + "4sI", f.read(8))
            available = file_size - (pos + 8)
            if size == _RIFF_UNKNOWN_SIZE:
                return None
            if size > available:
                name = chunk_id.decode("latin-1")
                return (
                    f"{name!r} chunk declares {size} bytes but only {available} remain "
                    f"({available / size:.0%})"
                )
            if chunk_id == b"data":
                return None
            pos += 8 + size + (size & 1)  # chunks are padded to an even size
    return None


def audio_info(path: str | Path) -> AudioInfo:
    """Read sample rate, channels and length from the header only (cheap even for hour-long files).

    Raises :class:`AudioFileError` when libsndfile cannot open the file, and
    :class:`TruncatedAudioError` for a WAV cut short.
    """
    path = Path(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioFileError(f"cannot read audio file {str(path)!r}: {err}") from err
    truncation = wav_truncation(path)
    if truncation is not None:
        raise TruncatedAudioError(f"audio file {str(path)!r} ends early: {truncation}")
    return AudioInfo(
        path=str(path),
        sample_rate=int(info.samplerate),
        channels=int(info.channels),
        frames=int(info.frames),
        format=str(info.format),
        subtype=str(info.subtype),
    )


def load_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode a whole file to float32 ``(channels, samples)`` in [-1, 1] plus its sample rate.

    Raises :class:`AudioFileError` if the file cannot be decoded and
    :class:`TruncatedAudioError` for a WAV cut short.
    """
    path = Path(path)
    truncation = wav_truncation(path) if path.is_file() else None
    if truncation is not None:
        raise TruncatedAudioError(f"audio file {str(path)!r} ends early: {truncation}")
    try:
        data, sample_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioFileError(f"cannot read audio file {str(path)!r}: {err}") from err
    return np.ascontiguousarray(data.T), int(sample_rate)


def write_audio_atomic(
    path: str | Path, audio: np.ndarray, sample_rate: int, subtype: str | None = None
) -> Path:
    """Write ``audio`` (``(samples,)`` or ``(channels, samples)``) so ``path`` is never half-written.

    The file is written under a temporary name in the same folder, flushed to disk, then moved
    over ``path`` (:func:`bark_kedro.atomic_files.atomic_path`: umask permissions, a full disk
    named with its device). The format follows the suffix (``.wav``, ``.flac``,
    ...); ``subtype`` defaults to 32-bit float for WAV, which keeps the samples exactly, and to
    libsndfile's default for other formats.
    """
    path = Path(path)
    audio = np.asarray(audio)
    if audio.ndim not in (1, 2):
        raise ValueError(
            f"audio for {str(path)!r} must be 1-D or (channels, samples), got {audio.shape}"
        )
    if not np.all(np.isfinite(audio)):
        raise ValueError(f"refusing to write NaN or infinite samples to {str(path)!r}")
    file_format = path.suffix.lstrip(".").upper()
    if file_format not in sf.available_formats():
        raise ValueError(f"cannot write {str(path)!r}: unknown audio format {path.suffix!r}")
    if subtype is None and file_format == "WAV":
        subtype = "FLOAT"
    with atomic_path(path, sync_folder=False) as tmp:  # one folder sync per file is slow
        sf.write(tmp, audio.T, sample_rate, subtype=subtype, format=file_format)
    return path
