"""Shared fixtures: a throwaway copy of the Kedro project to run pipelines in."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import PROJECT_ROOT


@pytest.fixture
def project_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the project's configuration in a temp dir, made the working directory.

    Catalog paths and the MLflow store are relative to the project root, so runs in the
    copy never touch the real ``data/``.
    """
    root = tmp_path / "project"
    root.mkdir()
    shutil.copytree(PROJECT_ROOT / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    (root / "conf" / "local").mkdir()
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(PROJECT_ROOT / name, root / name)
    # Kedro wants a source folder inside the project; the package itself is imported from the
    # installed checkout.
    (root / "src" / "bark_kedro").mkdir(parents=True)
    monkeypatch.chdir(root)
    return root
