"""kedro-datasets' Parquet and JSON entries, written so a file appears whole or not at all.

kedro-datasets writes straight to the final path, so a crash or a full disk mid-write leaves a
truncated file that a later run takes for the newest version. These subclasses write local
files through :func:`bark_kedro.atomic_files.atomic_path` (temporary sibling, fsync, rename);
other protocols (object stores, whose uploads are atomic already) keep the parent's save.
Use them as ``type: bark_kedro.datasets.atomic.ParquetDataset`` / ``...atomic.JSONDataset``.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from kedro.io.core import get_filepath_str
from kedro_datasets.json import JSONDataset as _JSONDataset
from kedro_datasets.pandas import ParquetDataset as _ParquetDataset

from bark_kedro.atomic_files import atomic_path


class ParquetDataset(_ParquetDataset):
    """``pandas.ParquetDataset`` with atomic local saves (same arguments)."""

    def save(self, data: pd.DataFrame) -> None:
        if self._protocol != "file" or "partition_cols" in self._save_args:
            return super().save(data)
        with atomic_path(get_filepath_str(self._get_save_path(), self._protocol)) as tmp:
            data.to_parquet(tmp, **self._save_args)
        self._invalidate_cache()


class JSONDataset(_JSONDataset):
    """``json.JSONDataset`` with atomic local saves (same arguments)."""

    def save(self, data: Any) -> None:
        if self._protocol != "file":
            return super().save(data)
        with atomic_path(get_filepath_str(self._get_save_path(), self._protocol)) as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(data, f, **self._save_args)
        self._invalidate_cache()
