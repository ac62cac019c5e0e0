"""A folder of resampled utterance WAVs (``audio_24k``, ``audio_16k``) as a catalog entry.

The ingest writes each file itself, one at a time and each whole or absent
(:func:`bark_kedro.audio.io.write_audio_atomic`), so memory does not grow with the corpus and a
crash leaves no half-written WAV. What the node hands to this dataset is the index of what it
wrote (``{utterance_id: path}``); saving checks that every listed file is in this folder at
this sample rate, so the catalog's folder and the ingest's ``output_dir`` cannot drift apart
unseen. Loading lists the folder: ``{file stem: path}`` of its complete WAVs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import soundfile as sf
from kedro.io import AbstractDataset, DatasetError

from bark_kedro.atomic_files import TMP_SUFFIX


class AudioFolderDataset(AbstractDataset[Mapping[str, str], dict[str, str]]):
    """``path``: the folder; ``sample_rate``: the rate every WAV in it has."""

    def __init__(self, path: str, sample_rate: int,
                 metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self._sample_rate = int(sample_rate)
        self.metadata = metadata

    def load(self) -> dict[str, str]:
        if not self._path.is_dir():
            raise DatasetError(f"audio folder {str(self._path)!r} does not exist; run ingest")
        return {
            file.stem: str(file) for file in sorted(self._path.glob("*.wav"))
            if not file.name.startswith(".") and not file.name.endswith(TMP_SUFFIX)
        }

    def save(self, data: Mapping[str, str]) -> None:
        folder = self._path.resolve()
        for utterance_id, path in data.items():
            file = Path(path)
            if file.resolve().parent != folder:
                raise DatasetError(
                    f"utterance {utterance_id!r}: {str(file)!r} is not in the catalog's audio "
                    f"folder {str(self._path)!r}; make `ingest.output_dir` and the catalog "
                    "entry's path agree"
                )
            try:
                rate = sf.info(str(file)).samplerate
            except (OSError, RuntimeError) as err:
                raise DatasetError(f"utterance {utterance_id!r}: {str(file)!r} is not a "
                                   f"readable WAV ({err})") from err
            if rate != self._sample_rate:
                raise DatasetError(f"utterance {utterance_id!r}: {str(file)!r} is at {rate} Hz; "
                                   f"the folder {str(self._path)!r} holds {self._sample_rate} Hz")

    def _exists(self) -> bool:
        return self._path.is_dir()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path), "sample_rate": self._sample_rate}
