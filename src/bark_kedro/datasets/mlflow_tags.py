"""A write-mostly catalog entry that sets tags on the active MLflow run."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import mlflow
from kedro.io import AbstractDataset, DatasetError

logger = logging.getLogger(__name__)
MAX_TAG_LENGTH = 5000


class MlflowTagsDataset(AbstractDataset[Mapping[str, Any], dict[str, str]]):
    """``save({name: value})`` sets each as a tag (``str(value)``, ``prefix`` prepended) on the
    active MLflow run; with no active run (tracking off, a plain ``DataCatalog``) it only logs
    that it skipped. ``load()`` returns the active run's tags under ``prefix`` ({} without a
    run).

    Example catalog entry::

        tokenize_tags:
          type: bark_kedro.datasets.mlflow_tags.MlflowTagsDataset
    """

    def __init__(self, prefix: str = "", metadata: dict[str, Any] | None = None) -> None:
        self._prefix = prefix
        self.metadata = metadata

    def save(self, data: Mapping[str, Any]) -> None:
        if not isinstance(data, Mapping):
            raise DatasetError(f"MlflowTagsDataset saves a dict of tags, got {type(data).__name__}")
        tags = {f"{self._prefix}{name}": str(value)[:MAX_TAG_LENGTH] for name, value in data.items()}
        if mlflow.active_run() is None:
            logger.info("no active MLflow run: tags %s not recorded", tags)
            return
        mlflow.set_tags(tags)

    def load(self) -> dict[str, str]:
        run = mlflow.active_run()
        if run is None:
            return {}
        tags = mlflow.get_run(run.info.run_id).data.tags
        return {k: v for k, v in tags.items() if k.startswith(self._prefix)}

    def _describe(self) -> dict[str, Any]:
        return {"prefix": self._prefix}
