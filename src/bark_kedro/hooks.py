"""Project hooks: multi-host runs, and what every run records in MLflow (and how)."""

from __future__ import annotations

import dataclasses
import logging
import subprocess
from pathlib import Path
from typing import Any

import mlflow
from kedro.framework.hooks import hook_impl
from kedro.io import AbstractVersionedDataset
from kedro_mlflow.framework.hooks.mlflow_hook import MlflowHook
from pydantic import BaseModel, TypeAdapter

from bark_kedro.mappings import flatten
from bark_kedro.pipelines import tracking

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
        _wrap_writes(catalog, list(catalog.keys()))
        logger.info("process %d: catalog entries are not written here", jax.process_index())

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        """Entries made from catalog patterns (``{stage}_model``) exist only once named."""
        import jax

        if jax.process_index() != 0:
            _wrap_writes(catalog, sorted(pipeline.datasets()))

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        """Every process waits for the others (process 0 still writes) before it exits.

        Otherwise a process that finishes first waits in JAX's shutdown barrier, whose
        time-out can end process 0 while it still saves models and MLflow records.
        """
        import jax

        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("bark_kedro pipeline end")


def _wrap_writes(catalog: Any, names: list[str]) -> None:
    """Wrap each named persisted entry so that this process never writes it."""
    from kedro.io import MemoryDataset

    from bark_kedro.datasets.primary_only import PrimaryWritesDataset

    for name in names:
        if name.startswith("params:") or name == "parameters" or name not in catalog:
            continue
        dataset = catalog.get(name)
        if not isinstance(dataset, MemoryDataset | PrimaryWritesDataset):
            catalog[name] = PrimaryWritesDataset(dataset)


# MLflow's experiment kind: the UI opens a model-training experiment on its runs
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
# Device facts each training stage reports; recorded once as ``device.<key>``.
DEVICE_TAG_KEYS = ("platform", "device_kind", "device_count", "process_count", "mesh_shape",
                   "jax_version")
# Device facts that say nothing on the process that logs (process 0, all its devices).
DROPPED_DEVICE_TAG_KEYS = ("local_device_count", "process_index")
def _is_parameter(name: str) -> bool:
    return name.startswith("params:") or name == "parameters"


def pipeline_parameters(pipeline: Any, catalog: Any) -> dict[str, Any]:
    """The flattened parameters the pipeline's nodes take, typed objects as plain values.

    A key appears once: a node taking ``params:train_coarse`` logs ``train_coarse.*``, not
    also the top-level object's repr; ``None`` values (settings that do not apply) are left out.
    """
    names = sorted({name for node in pipeline.nodes for name in node.inputs if _is_parameter(name)})
    flat: dict[str, Any] = {}
    for name in names:
        value = catalog.load(name)
        key = name.removeprefix("params:")
        as_dict = typed_params_as_dict(value)
        if as_dict is None and isinstance(value, dict):
            as_dict = value
        if as_dict is None:
            flat[key] = value
        else:
            flat.update(flatten(as_dict, f"{key}."))
    return {key: value for key, value in flat.items()
            if value is not None and not _belongs_to_another_stage(key)}


def _belongs_to_another_stage(key: str) -> bool:
    """``train_fine.data.semantic_window``: a coarse setting in the fine stage's parameters."""
    head, _, rest = key.partition(".data.")
    stage = head.removeprefix("train_")
    if not head.startswith("train_"):
        return False
    from bark_kedro.training.config import DATA_FIELDS_OF_OTHER_STAGES  # jax only when needed

    return rest in DATA_FIELDS_OF_OTHER_STAGES.get(stage, ())


class MlflowRunHook(MlflowHook):
    """kedro-mlflow's hook (one MLflow run per ``kedro run``), registered by ``settings.py`` in
    place of the plugin's so the run's records stay readable: parameters are logged once by
    :class:`RunTrackingHooks` (not per node, as Python reprs), Kedro's run facts are not copied
    into tags, and each stage's device facts become one ``device.*`` tag set.
    """

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        super().before_pipeline_run(run_params, pipeline, catalog)
        run = mlflow.active_run()
        if run is None:
            return
        client = mlflow.MlflowClient()
        tags = client.get_run(run.info.run_id).data.tags
        for key in set(run_params) & set(tags):
            client.delete_tag(run.info.run_id, key)
        for key, value in EXPERIMENT_KIND.items():
            client.set_experiment_tag(run.info.experiment_id, key, value)

    @hook_impl
    def before_node_run(self, node: Any, catalog: Any, inputs: dict[str, Any],
                        is_async: bool) -> None:
        without_params = {k: v for k, v in inputs.items() if not _is_parameter(k)}
        super().before_node_run(node, catalog, without_params, is_async)

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        if mlflow.active_run() is not None:
            merge_device_tags(mlflow.active_run().info.run_id)
        super().after_pipeline_run(run_params, pipeline, catalog)


def merge_device_tags(run_id: str) -> None:
    """``train_<stage>.<device key>`` tags -> one ``device.<key>`` (per stage where they differ)."""
    client = mlflow.MlflowClient()
    tags = client.get_run(run_id).data.tags
    for key in DEVICE_TAG_KEYS:
        per_stage = {name: value for name, value in tags.items()
                     if name.startswith("train_") and name.endswith(f".{key}")}
        if len(set(per_stage.values())) != 1:
            continue
        client.set_tag(run_id, f"device.{key}", next(iter(per_stage.values())))
        for name in per_stage:
            client.delete_tag(run_id, name)
    for name in tags:
        if name.startswith("train_") and name.rpartition(".")[2] in DROPPED_DEVICE_TAG_KEYS:
            client.delete_tag(run_id, name)


class RunTrackingHooks:
    """The project's MLflow records of a run (kedro-mlflow starts and ends the run).

    - a run name telling runs apart (pipeline, ``--params`` overrides, config fingerprint)
      and a description;
    - the parameters the pipeline's nodes take, each key once;
    - tags: pipeline, environment, Kedro session id, git commit;
    - every versioned dataset the run read or wrote as an MLflow dataset input (name, digest,
      source, version), and each trained stage as a registered MLflow model;
    - a log line naming where each model, report and audio output went.
    """

    def __init__(self) -> None:
        self._catalog: Any = None
        self._logged_inputs: set[str] = set()
        self._dataset_versions: dict[str, str] = {}

    @hook_impl
    def after_catalog_created(self, catalog: Any) -> None:
        self._catalog = catalog
        self._logged_inputs = set()
        self._dataset_versions = {}

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any) -> None:
        if mlflow.active_run() is None:
            return
        names = run_params.get("pipeline_names") or ["__default__"]
        pipeline_label = "+".join(names)
        params = pipeline_parameters(pipeline, self._catalog) if self._catalog else {}
        for start in range(0, len(params), 100):
            chunk = dict(list(params.items())[start:start + 100])
            mlflow.log_params({k: str(v)[:6000] for k, v in chunk.items()})
        overrides = flatten(run_params.get("runtime_params") or {})
        name = tracking.run_name(pipeline_label, overrides, tracking.config_fingerprint(params))
        env = run_params.get("env") or "local"
        tags = {
            "mlflow.runName": name,
            "mlflow.note.content": (
                f"`kedro run --pipelines={pipeline_label}` (env {env})"
                + (f" with {', '.join(f'{k}={v}' for k, v in overrides.items())}" if overrides
                   else " on the configuration as committed")
                + f"; configuration fingerprint {tracking.config_fingerprint(params)}."
            ),
            "pipeline": pipeline_label,
            "kedro_env": env,
            "kedro_session_id": str(run_params.get("run_id") or run_params.get("session_id")),
        }
        commit = git_commit(Path(run_params.get("project_path") or "."))
        if commit:
            tags["mlflow.source.git.commit"] = commit.removesuffix("-dirty")
            tags["git_commit"] = commit
        mlflow.set_tags(tags)

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any]) -> None:
        run = mlflow.last_active_run()
        if run is not None:
            # MLflow 3's UI opens an experiment on its GenAI overview unless the browser chose
            # "Model training" once; `workflowType=machine_learning` opens the run itself.
            logger.info("MLflow run %r recorded: mlflow ui --backend-store-uri %s, then "
                        "http://127.0.0.1:5000/#/experiments/%s/runs/%s"
                        "?workflowType=machine_learning", run.info.run_name,
                        mlflow.get_tracking_uri(), run.info.experiment_id, run.info.run_id)

    @hook_impl
    def after_dataset_loaded(self, dataset_name: str) -> None:
        self._record_dataset(dataset_name, "read")

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any) -> None:
        self._record_dataset(dataset_name, "written")
        self._register_model(dataset_name, data)
        self._log_output_path(dataset_name)

    def _dataset(self, dataset_name: str) -> Any:
        if self._catalog is None or _is_parameter(dataset_name):
            return None
        try:
            return self._catalog.get(dataset_name)
        except Exception:  # noqa: BLE001 - a dataset the catalog cannot resolve is not recorded
            return None

    def _record_dataset(self, dataset_name: str, direction: str) -> None:
        dataset = self._dataset(dataset_name)
        if not isinstance(dataset, AbstractVersionedDataset) or mlflow.active_run() is None:
            return
        version = (
            dataset.resolve_load_version() if direction == "read" else dataset.resolve_save_version()
        )
        if not version or dataset_name in self._logged_inputs:
            return
        self._logged_inputs.add(dataset_name)
        self._dataset_versions[dataset_name] = version
        source = Path(str(dataset._filepath)).absolute().as_posix()
        tracking.log_dataset_input(dataset_name, source, version, context=direction)

    def _register_model(self, dataset_name: str, data: Any) -> None:
        from bark_kedro.datasets.model_directory import ModelDirectoryDataset

        dataset = self._dataset(dataset_name)
        if not isinstance(dataset, ModelDirectoryDataset) or mlflow.active_run() is None:
            return
        directory = Path(_saved_path(dataset).as_posix())
        summary = (data[1] if isinstance(data, tuple) else {}).get("summary", {})
        metadata = {
            "config": json_safe(getattr(data[0] if isinstance(data, tuple) else data,
                                        "config", None)),
            "dataset_versions": dict(self._dataset_versions),
            "steps": summary.get("steps"),
        }
        info = tracking.register_stage_model(dataset_name, f"bark_kedro.{dataset_name}",
                                             directory, metadata)
        logger.info("%s registered as MLflow model bark_kedro.%s version %s", dataset_name,
                    dataset_name, info.registered_model_version)
        if summary.get("final_val_loss") is not None:
            logger.info("%s: validation loss %.3f after %s steps", dataset_name,
                        summary["final_val_loss"], summary.get("steps"))

    def _log_output_path(self, dataset_name: str) -> None:
        dataset = self._dataset(dataset_name)
        layer = ((getattr(dataset, "metadata", None) or {}).get("kedro-viz") or {}).get("layer")
        if layer not in ("models", "model_output", "reporting"):
            return
        if type(dataset).__module__.startswith("kedro_mlflow"):  # summaries: MLflow artifacts
            return
        if isinstance(dataset, AbstractVersionedDataset) and dataset.resolve_save_version():
            path = _saved_path(dataset)
        else:
            path = getattr(dataset, "_filepath", None) or getattr(dataset, "_path", None)
        if path is not None:
            logger.info("%s -> %s", dataset_name, Path(str(path)).as_posix())


def _saved_path(dataset: AbstractVersionedDataset) -> Any:
    """Where a versioned dataset just wrote its save version."""
    return dataset._get_versioned_path(dataset.resolve_save_version())


def json_safe(config: Any) -> Any:
    """A model config as a JSON-ready dict (``None`` when there is none)."""
    if config is None:
        return None
    return config.to_dict() if hasattr(config, "to_dict") else str(config)
