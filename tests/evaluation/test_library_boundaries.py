"""generation/ and evaluation/ are used by trained models only: they import nothing from
training/ (that library's work, such as teacher-forced metrics, lives there)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import bark_kedro

PACKAGE = Path(bark_kedro.__file__).parent
FORBIDDEN = "bark_kedro.training"


def imported_modules(source: str) -> set[str]:
    """Every absolute module name an ``import`` / ``from ... import`` statement names."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def training_imports(path: Path) -> list[str]:
    return sorted(name for name in imported_modules(path.read_text(encoding="utf-8"))
                  if name == FORBIDDEN or name.startswith(FORBIDDEN + "."))


def test_the_check_sees_a_training_import():
    source = "from bark_kedro.training import evaluate_examples\nimport bark_kedro.training.run\n"
    names = imported_modules(source)
    assert "bark_kedro.training" in names and "bark_kedro.training.run" in names
    assert "bark_kedro.training" not in imported_modules("from bark_kedro import models\n")
    assert "bark_kedro.training" in imported_modules("from bark_kedro import training\n")


@pytest.mark.parametrize("library", ["generation", "evaluation"])
def test_library_imports_nothing_from_training(library):
    files = sorted((PACKAGE / library).rglob("*.py"))
    assert files, f"no Python files under {PACKAGE / library}"
    offenders = {str(f.relative_to(PACKAGE)): training_imports(f) for f in files}
    assert {f: names for f, names in offenders.items() if names} == {}
