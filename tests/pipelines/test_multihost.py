"""Multi-host runs: only process 0 writes catalog entries and MLflow records."""

from __future__ import annotations

from pathlib import Path

import jax
import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro_datasets.pandas import ParquetDataset

from bark_kedro import settings
from bark_kedro.datasets.primary_only import PrimaryWritesDataset
from bark_kedro.hooks import MultiHostHooks


def _catalog(tmp_path: Path) -> DataCatalog:
    written = ParquetDataset(filepath=str(tmp_path / "written.parquet"))
    written.save(pd.DataFrame({"a": [1]}))
    return DataCatalog({
        "input": written,
        "output": ParquetDataset(filepath=str(tmp_path / "output.parquet")),
        "intermediate": MemoryDataset(),
    })


def test_other_processes_read_inputs_but_never_write(tmp_path, monkeypatch) -> None:
    catalog = _catalog(tmp_path)
    monkeypatch.setattr(jax, "process_index", lambda: 1)
    MultiHostHooks().after_catalog_created(catalog)
    assert isinstance(catalog.get("output"), PrimaryWritesDataset)
    assert isinstance(catalog.get("intermediate"), MemoryDataset)
    assert catalog.load("input")["a"].tolist() == [1]
    catalog.save("output", pd.DataFrame({"b": [2]}))
    assert not (tmp_path / "output.parquet").exists()
    assert catalog.load("output")["b"].tolist() == [2]  # downstream nodes of this process


def test_process_zero_writes(tmp_path, monkeypatch) -> None:
    catalog = _catalog(tmp_path)
    monkeypatch.setattr(jax, "process_index", lambda: 0)
    MultiHostHooks().after_catalog_created(catalog)
    catalog.save("output", pd.DataFrame({"b": [2]}))
    assert (tmp_path / "output.parquet").is_file()


@pytest.mark.parametrize("variable", ["JAX_PROCESS_ID", "TPU_WORKER_ID", "SLURM_PROCID"])
def test_only_process_zero_tracks_into_the_project_store(variable, monkeypatch) -> None:
    for name in settings._RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    project_store = "sqlite:////project/data/09_tracking/mlflow.db"
    assert settings._tracking_store(project_store) == project_store
    monkeypatch.setenv(variable, "0")
    assert settings._tracking_store(project_store) == project_store
    monkeypatch.setenv(variable, "3")
    other = settings._tracking_store(project_store)
    assert other != project_store and "process_3" in other
