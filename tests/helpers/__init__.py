"""Helpers shared by test modules (test modules import from here, never from each other)."""

import shutil
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def copy_project(root: Path) -> Path:
    """A copy of the project's configuration at ``root`` (an empty ``conf/local``), where
    Kedro sessions run without touching the real ``data/``."""
    root.mkdir(parents=True)
    shutil.copytree(PROJECT_ROOT / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    (root / "conf" / "local").mkdir()
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(PROJECT_ROOT / name, root / name)
    # Kedro wants a source folder inside the project; the package itself is imported from the
    # installed checkout.
    (root / "src" / "bark_kedro").mkdir(parents=True)
    return root
