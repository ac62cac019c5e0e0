"""The folder of files the original Bark plays: suno ``.pt`` checkpoints and voice prompts.

Versioned and written whole: the folder is filled under a hidden temporary name and renamed
into place, so a crash never leaves a version with some of the files. A ``manifest.json``
beside them gives each file's SHA-256 and the utterance each voice prompt was made from.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from kedro.io import DatasetError

from bark_kedro.datasets.artifacts import _LocalArtifactDataset
from bark_kedro.generation.voice import VoicePrompt, save_voice_prompt
from bark_kedro.models.suno_format import export_bark_models

MANIFEST = "manifest.json"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class BarkFilesDataset(_LocalArtifactDataset[dict[str, Any]]):
    """``save({"models": {stage: model}, "size": "auto", "voices": {name: VoicePrompt},
    "voice_sources": {name: utterance_id}})`` writes ``text_2.pt`` (or ``text.pt``) ...,
    ``<name>.npz`` and the manifest; ``load()`` gives ``{file name: path}``.

    ``log_to_mlflow``: ``all`` logs every file to the active run under ``artifact_path``,
    ``voices`` the prompts and the manifest only (a large model's ``.pt`` files are GBs),
    ``none`` nothing::

        bark_export:
          type: bark_kedro.datasets.bark_files.BarkFilesDataset
          filepath: data/07_model_output/bark_export
          versioned: true
          log_to_mlflow: voices
    """

    kind = "Bark export folder"

    def __init__(self, filepath: str, version: Any = None,
                 log_to_mlflow: Literal["all", "voices", "none"] = "voices",
                 artifact_path: str = "bark_export",
                 metadata: dict[str, Any] | None = None) -> None:
        super().__init__(filepath, version, metadata=metadata)
        if log_to_mlflow not in ("all", "voices", "none"):
            raise DatasetError(f"{filepath}: log_to_mlflow must be 'all', 'voices' or 'none', "
                               f"got {log_to_mlflow!r}")
        self._log_to_mlflow = log_to_mlflow
        self._artifact_path = artifact_path

    def save(self, data: dict[str, Any]) -> None:
        path = Path(self._get_save_path().as_posix())  # before the folder exists (Kedro checks)
        super().save(data)
        if self._log_to_mlflow == "none":
            return
        import mlflow

        if mlflow.active_run() is None:
            return
        for file in sorted(path.iterdir()):
            if self._log_to_mlflow == "all" or file.suffix != ".pt":
                mlflow.log_artifact(str(file), self._artifact_path)
        mlflow.set_tag("bark_export.folder", str(path))

    def _write(self, data: dict[str, Any], path: Path) -> None:
        voices = data.get("voices", {})
        if not isinstance(data.get("models"), dict) or not all(
                isinstance(v, VoicePrompt) for v in voices.values()):
            raise DatasetError(f"{self._filepath}: expected {{'models': {{stage: model}}, "
                               f"'voices': {{name: VoicePrompt}}}}, got {sorted(data)}")
        path.mkdir(parents=True)
        files = {stage: p.name for stage, p in
                 export_bark_models(data["models"], path, data.get("size", "auto")).items()}
        for name, prompt in voices.items():
            save_voice_prompt(path / f"{name}.npz", prompt)
        sources = data.get("voice_sources", {})
        manifest = {
            "models": files,
            "voices": {name: {"file": f"{name}.npz", "utterance_id": sources.get(name)}
                       for name in voices},
            "sha256": {p.name: _sha256(p) for p in sorted(path.iterdir())},
        }
        (path / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")

    def _read(self, path: Path) -> dict[str, Any]:
        return {p.name: p for p in sorted(path.iterdir())}
