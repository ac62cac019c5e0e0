"""A catalog entry for a model directory (Orbax), so kedro-viz shows where each model came from."""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io import AbstractVersionedDataset, DatasetError, Version

from bark_kedro.models.convert import Model

logger = logging.getLogger(__name__)


class ModelDirectoryDataset(AbstractVersionedDataset[Any, Model]):
    """A Bark stage model saved with :func:`bark_kedro.models.save_model` (parameters + config).

    ``save`` takes a model, or ``(model, metadata)`` to store a JSON dict beside it (training
    summary, token dataset versions, ...). Orbax writes into a temporary folder and renames it,
    so a crash never leaves a half-written model. With ``log_to_mlflow`` the saved directory is
    also logged as an artifact of the active MLflow run under ``artifact_path``.

    Example catalog entry::

        coarse_model:
          type: bark_kedro.datasets.model_directory.ModelDirectoryDataset
          filepath: data/06_models/coarse_model
          versioned: true
          log_to_mlflow: true
    """

    def __init__(
        self,
        filepath: str,
        version: Version | None = None,
        log_to_mlflow: bool = False,
        artifact_path: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(PurePosixPath(Path(filepath).as_posix()), version)
        self._log_to_mlflow = log_to_mlflow
        self._artifact_path = artifact_path or Path(filepath).name
        self.metadata = metadata

    def load(self) -> Model:
        """The model of the (latest or pinned) version; its config is ``model.config``."""
        from bark_kedro.models import load_model

        path = Path(self._get_load_path().as_posix())
        if not path.exists():
            raise DatasetError(f"no model at {path}: run the training pipeline that writes it")
        return load_model(path)[0]

    def save(self, data: Model | tuple[Model, dict[str, Any]]) -> None:
        """Write the model (and optional metadata) as a new directory."""
        from bark_kedro.models import save_model

        model, metadata = data if isinstance(data, tuple) else (data, None)
        path = Path(self._get_save_path().as_posix())
        path.parent.mkdir(parents=True, exist_ok=True)
        save_model(path, model, metadata=metadata)
        if self._log_to_mlflow:
            import mlflow

            if mlflow.active_run() is not None:
                mlflow.log_artifacts(str(path), self._artifact_path)

    def _exists(self) -> bool:
        try:
            path = self._get_load_path()
        except DatasetError:
            return False
        return Path(path.as_posix()).is_dir()

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": str(self._filepath),
            "version": self._version,
            "log_to_mlflow": self._log_to_mlflow,
        }


class ModelDataLayoutDataset(ModelDirectoryDataset):
    """The data layout a saved model was trained with: the ``data`` of its metadata (read-only).

    Give it the ``filepath`` of the model's entry, so it reads the same (latest) version; the run
    integrity hooks read both at one version when either is pinned. A model saved without a layout
    (trained before layouts were recorded) fails with an error, unless ``fallback_layout``
    gives one, which is then used with a logged warning.

    Example catalog entry::

        coarse_model_data_layout:
          type: bark_kedro.datasets.model_directory.ModelDataLayoutDataset
          filepath: data/06_models/coarse_model
          versioned: true
    """

    def __init__(
        self,
        filepath: str,
        version: Version | None = None,
        fallback_layout: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(filepath, version, metadata=metadata)
        self._fallback_layout = fallback_layout

    def load(self) -> dict[str, Any]:
        """The layout dict (``StageDataConfig`` fields) stored with the model."""
        from bark_kedro.models import load_metadata

        path = Path(self._get_load_path().as_posix())
        if not path.exists():
            raise DatasetError(f"no model at {path}: run the training pipeline that writes it")
        layout = load_metadata(path).get("data")
        if layout is not None:
            return dict(layout)
        if self._fallback_layout is None:
            raise DatasetError(
                f"the model at {path} records no training data layout (it was saved before "
                "layouts were recorded): retrain it, or give the layout it was trained with "
                "as 'fallback_layout' of this catalog entry"
            )
        logger.warning("the model at %s records no training data layout: using the catalog's "
                       "fallback_layout %s", path, self._fallback_layout)
        return dict(self._fallback_layout)

    def save(self, data: Any) -> None:
        raise DatasetError("a model's data layout is written with the model (its own entry)")

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "version": self._version,
                "fallback_layout": self._fallback_layout}
