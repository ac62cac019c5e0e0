"""Multi-host runs: only process 0 writes; the other processes keep their outputs in memory."""

from __future__ import annotations

from typing import Any

from kedro.io import AbstractDataset

_UNSET = object()


class PrimaryWritesDataset(AbstractDataset[Any, Any]):
    """Wraps a catalog entry on a process other than 0 of a multi-host run.

    ``save`` keeps the data in memory instead of writing it (process 0 writes the real
    one); ``load`` returns that data when this process saved it, else it reads the wrapped
    dataset (inputs written before the run).
    """

    def __init__(self, dataset: AbstractDataset) -> None:
        self._dataset = dataset
        self._saved: Any = _UNSET
        self.metadata = getattr(dataset, "metadata", None)

    def load(self) -> Any:
        return self._dataset.load() if self._saved is _UNSET else self._saved

    def save(self, data: Any) -> None:
        self._saved = data

    def _exists(self) -> bool:
        return self._saved is not _UNSET or self._dataset.exists()

    def _describe(self) -> dict[str, Any]:
        return {"wrapped": self._dataset._describe(), "writes": False}
