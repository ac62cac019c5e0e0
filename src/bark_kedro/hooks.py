"""Project hooks: what every run records in MLflow beyond kedro-mlflow's defaults."""

from __future__ import annotations

import dataclasses
import logging
import subprocess
from pathlib import Path
from typing import Any

import mlflow
from kedro.framework.hooks import hook_impl
from kedro.io import AbstractVersionedDataset
from pydantic import BaseModel, TypeAdapter

from bark_kedro.mappings import flatten

logger = logging.getLogger(__name__)


def git_commit(project_path: Path) -> str | None:
    """The checked-out commit of ``project_path`` with a ``-dirty`` suffix, or None outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=project_path, capture_output=True, text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=project_path,
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{commit}-dirty" if dirty else commit


def typed_params_as_dict(value: Any) -> dict[str, Any] | None:
    """The plain-dict form of a typed parameter object (pydantic model or dataclass)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return TypeAdapter(type(value)).dump_python(value, mode="json")
    return None


class MultiHostHooks:
    """Multi-host runs (TPU pods, GPU clusters): every host runs the same ``kedro run``.

    ``jax.distributed.initialize()`` runs first when the environment describes several
    processes (see :func:`bark_kedro.training.maybe_initialize_distributed`); then on
    every process but 0 each persisted catalog entry is wrapped so that it never writes
    (process 0 writes datasets, models and reports). MLflow records come from process 0
    only: the others track into a throwaway local store (see ``settings.py``).
    """

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        from bark_kedro.training.mesh import maybe_initialize_distributed

        maybe_initialize_distributed()

    @hook_impl
    def after_catalog_created(self, catalog: Any) -> None:
        import jax

        if jax.process_index() == 0:
            return
        from kedro.io import MemoryDataset

        from bark_kedro.datasets.primary_only import PrimaryWritesDataset

        for name in list(catalog.keys()):
            dataset = catalog.get(name)
            if not isinstance(dataset, MemoryDataset | PrimaryWritesDataset):
                catalog[name] = PrimaryWritesDataset(dataset)
        logger.info("process %d: catalog entries are not written here", jax.process_index())


class RunTrackingHooks:
    """Tags each MLflow run with its pipeline, git commit and the dataset versions it used.

    kedro-mlflow's own hooks start the run before ``before_pipeline_run`` reaches this
    class (plugin hooks are called first) and end it after the pipeline, so everything here
    is written while the run is active.
    """

    def __init__(self) -> None:
        self._catalog: Any = None

    @hook_impl
    def after_catalog_created(self, catalog: Any) -> None:
        self._catalog = catalog

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any]) -> None:
        if mlflow.active_run() is None:
            return
        names = run_params.get("pipeline_names") or [run_params.get("pipeline_name")]
        tags = {
            "pipeline": "+".join(name or "__default__" for name in names),
            "kedro_env": run_params.get("env") or "local",
        }
        commit = git_commit(Path(run_params.get("project_path") or "."))
        if commit:
            tags["mlflow.source.git.commit"] = commit.removesuffix("-dirty")
            tags["git_commit"] = commit
        mlflow.set_tags(tags)
        self._log_typed_params()

    def _log_typed_params(self) -> None:
        """Log typed parameters flattened (kedro-mlflow flattens only plain dicts)."""
        if self._catalog is None:
            return
        for name in self._catalog.keys():
            if not name.startswith("params:") or "." in name:
                continue
            as_dict = typed_params_as_dict(self._catalog.load(name))
            if as_dict is not None:
                flat = flatten(as_dict, f"{name.removeprefix('params:')}.")
                mlflow.log_params({key: str(value)[:6000] for key, value in flat.items()})

    @hook_impl
    def after_dataset_loaded(self, dataset_name: str) -> None:
        self._tag_version(dataset_name, "read")

    @hook_impl
    def after_dataset_saved(self, dataset_name: str) -> None:
        self._tag_version(dataset_name, "written")

    def _tag_version(self, dataset_name: str, direction: str) -> None:
        if self._catalog is None or mlflow.active_run() is None:
            return
        try:
            dataset = self._catalog.get(dataset_name)
        except Exception:  # noqa: BLE001 - a dataset the catalog cannot resolve has no version
            return
        if not isinstance(dataset, AbstractVersionedDataset):
            return
        version = (
            dataset.resolve_load_version() if direction == "read" else dataset.resolve_save_version()
        )
        if version:
            mlflow.set_tag(f"dataset.{dataset_name}.{direction}_version", version)
