"""Shared fixtures: a throwaway copy of the Kedro project to run pipelines in."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import copy_project


@pytest.fixture
def project_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the project's configuration in a temp dir, made the working directory.

    Catalog paths and the MLflow store are relative to the project root, so runs in the
    copy never touch the real ``data/``.
    """
    root = copy_project(tmp_path / "project")
    monkeypatch.chdir(root)
    return root


@pytest.fixture(scope="session")
def _initialized_mlflow_db(tmp_path_factory) -> Path:
    """An empty MLflow sqlite store with its schema made (the migrations take seconds)."""
    import mlflow

    path = tmp_path_factory.mktemp("mlflow_template") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def mlflow_db(_initialized_mlflow_db: Path, tmp_path: Path) -> str:
    """The ``sqlite:///`` URI of a fresh, empty MLflow store of this test."""
    path = tmp_path / "mlflow.db"
    shutil.copy(_initialized_mlflow_db, path)
    return f"sqlite:///{path}"
