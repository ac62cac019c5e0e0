"""Catalog entries for what people listen to and read: WAV files and the evaluation report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from kedro.io import AbstractDataset, DatasetError

from bark_kedro.datasets.artifacts import _LocalArtifactDataset
from bark_kedro.evaluation.report import write_report
from bark_kedro.generation.synthesis import SAMPLE_RATE


class WavDataset(_LocalArtifactDataset[np.ndarray]):
    """A mono 24 kHz waveform as a 16-bit PCM WAV (plays in every browser and in MLflow).

    Versioned like the other artifacts; with ``log_to_mlflow`` each saved file is also logged
    to the active MLflow run under ``artifact_path``.
    """

    kind = "audio file"

    def __init__(self, filepath: str, version: Any = None, log_to_mlflow: bool = False,
                 artifact_path: str = "audio", metadata: dict[str, Any] | None = None) -> None:
        super().__init__(filepath, version, metadata=metadata)
        self._log_to_mlflow = log_to_mlflow
        self._artifact_path = artifact_path

    def save(self, data: np.ndarray) -> None:
        path = self._get_save_path().as_posix()  # before the file exists (Kedro checks)
        super().save(data)
        if self._log_to_mlflow:
            import mlflow

            if mlflow.active_run() is not None:
                mlflow.log_artifact(path, self._artifact_path)

    def _write(self, data: np.ndarray, path: Path) -> None:
        audio = np.asarray(data, np.float32)
        if audio.ndim != 1 or audio.size == 0 or not np.all(np.isfinite(audio)):
            raise DatasetError(
                f"{self._filepath}: expected non-empty finite mono audio, got shape {audio.shape}"
            )
        sf.write(path, np.clip(audio, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16", format="WAV")

    def _read(self, path: Path) -> np.ndarray:
        audio, rate = sf.read(path, dtype="float32")
        if rate != SAMPLE_RATE:
            raise DatasetError(f"{path} is sampled at {rate} Hz, expected {SAMPLE_RATE}")
        return audio


class EvaluationReportDataset(AbstractDataset[dict[str, Any], dict[str, Any]]):
    """The evaluation report folder (``index.html``, ``report.json``, WAVs, spectrograms).

    ``save`` takes the keyword arguments of :func:`bark_kedro.evaluation.report.write_report`
    (``utterances``, ``stage_metrics``, ``run_facts``); the folder is replaced atomically and,
    with ``log_to_mlflow``, logged as an artifact directory of the active run. ``load``
    returns the parsed ``report.json``.
    """

    def __init__(self, path: str, log_to_mlflow: bool = True, artifact_path: str = "evaluation",
                 metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self._log_to_mlflow = log_to_mlflow
        self._artifact_path = artifact_path
        self.metadata = metadata

    def save(self, data: dict[str, Any]) -> None:
        folder = write_report(self._path, **data)
        if self._log_to_mlflow:
            import mlflow

            if mlflow.active_run() is not None:
                mlflow.log_artifacts(str(folder), self._artifact_path)

    def load(self) -> dict[str, Any]:
        report = self._path / "report.json"
        if not report.is_file():
            raise DatasetError(f"no report at {report}: run the evaluate pipeline")
        return json.loads(report.read_text())

    def _exists(self) -> bool:
        return (self._path / "report.json").is_file()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path), "log_to_mlflow": self._log_to_mlflow}
