"""A versioned catalog entry for token tables stored as Parquet shards with an index.

Each version is one folder ``<filepath>/<version>/<name>`` in the format of
:mod:`bark_kedro.tokenizers.shards`, written shard by shard and renamed into place only when
whole (a killed run leaves no version visible). ``save`` takes a DataFrame, an iterator of
row batches (DataFrames, e.g. a Ray Dataset's ``iter_batches(batch_format="pandas")``), or a
:class:`~bark_kedro.tokenizers.stream.TokenStream` (what the tokenize nodes return: it is
tokenized shard by shard while it is written, and the complete shards a killed run of the
same work left in its version's ``.<name>.partial`` folder are taken over instead of being
tokenized again); ``load`` returns a lazy :class:`~bark_kedro.tokenizers.shards.ShardedTable`::

    codec_tokens:
      type: bark_kedro.datasets.sharded.ShardedTableDataset
      filepath: data/05_model_input/codec_tokens
      rows_per_shard: 10000
      versioned: true
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
from kedro.io import AbstractVersionedDataset, DatasetError, Version

from bark_kedro.datasets.local_versions import load_path_exists
from bark_kedro.tokenizers.shards import (
    ROW_GROUP_ROWS,
    ShardedTable,
    ShardWorkSource,
    write_shards,
)


class ShardedTableDataset(AbstractVersionedDataset[Any, ShardedTable]):
    """Token table shards (local files); ``rows_per_shard`` bounds the utterances per shard,
    ``row_group_rows`` the rows read together on random access."""

    def __init__(self, filepath: str, rows_per_shard: int = 10_000, row_group_rows: int = ROW_GROUP_ROWS,
                 version: Version | None = None, metadata: dict[str, Any] | None = None):
        super().__init__(PurePosixPath(Path(filepath).as_posix()), version)
        self._rows_per_shard, self._row_group_rows = int(rows_per_shard), int(row_group_rows)
        self.metadata = metadata

    def load(self) -> ShardedTable:
        path = Path(self._get_load_path().as_posix())
        if not path.exists():
            raise DatasetError(f"no sharded token table at {path}: run the tokenize pipeline")
        return ShardedTable(path)

    def save(self, data: pd.DataFrame | ShardedTable | Iterable[pd.DataFrame]
             | ShardWorkSource) -> None:
        path = Path(self._get_save_path().as_posix())
        # killed runs' work beside the other versions: <filepath>/<version>/.<name>.partial
        earlier = sorted(Path(self._filepath.as_posix()).glob(f"*/.{path.name}.partial"))
        write_shards(data, path, self._rows_per_shard, self._row_group_rows, earlier)

    def _exists(self) -> bool:
        return load_path_exists(self)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "version": self._version,
                "rows_per_shard": self._rows_per_shard}
