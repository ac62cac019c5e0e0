"""Hooks that keep what a run reads whole and consistent, whatever happened to earlier runs.

- On start: temporary files left by killed writers are removed (see
  :mod:`bark_kedro.atomic_files`), and MLflow runs of this store left ``RUNNING`` by a process
  that is gone are marked ``KILLED`` with a note.
- Runs that commit together: the versioned outputs of the ``tokenize`` pipeline form one set.
  A run that has saved the whole set writes ``tokenize_commit`` right after it (a versioned
  JSON record of the version they share and the ``utterances`` version they were made from). A later pipeline that reads
  any of that set resolves "latest" to the newest committed set (the outputs of a failed or
  killed run are never picked up), and fails at start, naming the datasets and the
  ``--load-versions`` that would fix it, when pinned versions disagree or when ``utterances``
  is not the version the tokens were made from.
- A model and the data layout saved with it (``<stage>_model`` and
  ``<stage>_model_data_layout``, one directory) are read at one version: pinning either with
  ``--load-versions`` pins the other to the same version, unpinned both read the model's
  latest, and pins that disagree fail at start naming both and the fix.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.io import AbstractVersionedDataset, Version
from kedro.io.core import VersionNotFoundError

from bark_kedro.atomic_files import remove_orphans

logger = logging.getLogger(__name__)


def _is_primary_process() -> bool:
    """Process 0 of a multi-host run (or the only process): the one that writes ``data/``."""
    import jax

    return jax.process_index() == 0

COMMITTED_PIPELINE = "tokenize"
COMMIT_RECORD = "tokenize_commit"
SOURCE_DATASET = "utterances"
PROCESS_TAGS = ("process.host", "process.pid", "process.start")


class InconsistentInputsError(RuntimeError):
    """The datasets a pipeline would read do not come from one committed run."""


def process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot, from ``/proc``), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def process_is_gone(host: str, pid: int, start: str | None) -> bool:
    """Whether the process a run recorded no longer runs (only decidable on its own host)."""
    if host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    return start is not None and process_start(pid) not in (None, start)  # pid reused


def mark_dead_runs_killed(client: Any, experiment_ids: list[str], active_run_id: str) -> list[str]:
    """Set ``KILLED`` (with a note) on ``RUNNING`` runs whose recorded process is gone."""
    killed = []
    runs = client.search_runs(experiment_ids, filter_string="attributes.status = 'RUNNING'")
    for run in runs:
        tags = run.data.tags
        if run.info.run_id == active_run_id or not all(t in tags for t in PROCESS_TAGS[:2]):
            continue
        host, pid = tags["process.host"], int(tags["process.pid"])
        if not process_is_gone(host, pid, tags.get("process.start")):
            continue
        note = (f"Marked KILLED on {time.strftime('%Y-%m-%d %H:%M:%S %Z')} by run "
                f"{active_run_id}: process {pid} on {host} ended without closing this run "
                "(killed, out of memory or power lost).")
        client.set_tag(run.info.run_id, "mlflow.note.content", note)
        client.set_terminated(run.info.run_id, status="KILLED")
        killed.append(run.info.run_id)
    return killed


def _versioned(catalog: Any, name: str) -> AbstractVersionedDataset | None:
    try:
        dataset = catalog.get(name)
    except Exception:  # noqa: BLE001 - an entry the catalog cannot build is not ours to judge
        return None
    dataset = getattr(dataset, "_dataset", dataset)  # PrimaryWritesDataset on other hosts
    return dataset if isinstance(dataset, AbstractVersionedDataset) else None


def _pin(dataset: AbstractVersionedDataset, version: str) -> None:
    save = dataset._version.save if dataset._version else None
    dataset._version = Version(version, save)


def _latest(dataset: AbstractVersionedDataset) -> str | None:
    try:
        return dataset.resolve_load_version()
    except VersionNotFoundError:
        return None


def _fix_hint(versions: dict[str, str]) -> str:
    pins = ",".join(f"{name}:{version}" for name, version in sorted(versions.items()))
    return f"--load-versions={pins}"


def resolve_committed_inputs(catalog: Any, set_members: list[str], inputs: set[str],
                             pinned: dict[str, str]) -> dict[str, str]:
    """Pin the set members this pipeline reads to the newest committed set; returns the pins.

    Raises :class:`InconsistentInputsError` naming the datasets and the fix.
    """
    read = [name for name in set_members if name in inputs]
    if not read:
        return {}
    datasets = {name: _versioned(catalog, name) for name in read}
    datasets = {name: ds for name, ds in datasets.items() if ds is not None}
    record_ds = _versioned(catalog, COMMIT_RECORD)
    record = None
    if record_ds is not None:
        if COMMIT_RECORD in pinned:
            _pin(record_ds, pinned[COMMIT_RECORD])
        if _latest(record_ds) is not None:
            record = record_ds.load()
    if record is None:  # no run committed yet (older data): the latest must at least agree
        latest = {name: pinned.get(name) or _latest(ds) for name, ds in datasets.items()}
        if len(set(latest.values())) > 1:
            described = ", ".join(f"{n} at {v}" for n, v in sorted(latest.items()))
            newest_common = max(set.intersection(*(
                set(ds.list_versions(full_path=False)) for ds in datasets.values())), default=None)
            fix = (_fix_hint(dict.fromkeys(latest, newest_common)) if newest_common
                   else f"kedro run --pipeline={COMMITTED_PIPELINE}")
            raise InconsistentInputsError(
                f"{described} do not come from one {COMMITTED_PIPELINE} run; "
                f"rerun it or pin one set with {fix}")
        return {}
    committed = record["version"]
    pins = {}
    for name, ds in datasets.items():
        want = pinned.get(name, committed)
        if not Path(ds._get_versioned_path(want).as_posix()).exists():
            raise InconsistentInputsError(
                f"{name} has no version {want} (the newest complete {COMMITTED_PIPELINE} run); "
                f"rerun `kedro run --pipeline={COMMITTED_PIPELINE}` or pin an existing set")
        latest = _latest(ds)
        if name not in pinned and latest != committed:
            logger.warning("%s: latest version %s comes from a %s run that did not complete; "
                           "reading %s, the newest complete set", name, latest,
                           COMMITTED_PIPELINE, committed)
        _pin(ds, want)
        pins[name] = want
    if len(set(pins.values())) > 1:
        mixed = {n: v for n, v in pins.items() if v != committed}
        first_pin = next(v for n, v in sorted(pinned.items()) if n in pins)
        raise InconsistentInputsError(
            f"pinned {', '.join(f'{n}:{v}' for n, v in sorted(mixed.items()))} but the other "
            f"{COMMITTED_PIPELINE} outputs read here are at {committed}; pin one set with "
            f"{_fix_hint(dict.fromkeys(pins, first_pin))}")
    chosen = next(iter(pins.values()))
    if chosen != committed:  # one older set, pinned whole: check it against its own record
        record = None
        if Path(record_ds._get_versioned_path(chosen).as_posix()).exists():
            _pin(record_ds, chosen)
            record = record_ds.load()
        committed = chosen
    if record is None:
        return pins
    source = record.get("inputs", {}).get(SOURCE_DATASET)
    source_ds = _versioned(catalog, SOURCE_DATASET)
    if source and source_ds is not None and SOURCE_DATASET in inputs:
        have = pinned.get(SOURCE_DATASET) or _latest(source_ds)
        if have != source:
            raise InconsistentInputsError(
                f"{SOURCE_DATASET} at {have} is not the version the {COMMITTED_PIPELINE} "
                f"outputs at {committed} were made from ({source}): run "
                f"`kedro run --pipeline={COMMITTED_PIPELINE}` on it, or read the matching pair "
                f"with --load-versions={SOURCE_DATASET}:{source}")
    return pins


LAYOUT_SUFFIX = "_data_layout"


def align_model_layout_pins(catalog: Any, inputs: set[str], pinned: dict[str, str],
                            produced: set[str] = frozenset()) -> dict[str, str]:
    """Read each ``<stage>_model_data_layout`` this pipeline reads at the version of its
    ``<stage>_model`` (pinned or latest; a model in ``produced``, written by this run, at the
    version this run saves it at, the model itself left unpinned); returns the pins.

    Raises :class:`InconsistentInputsError` when both are pinned to different versions.
    """
    pins = {}
    for layout_name in sorted(n for n in inputs if n.endswith(LAYOUT_SUFFIX)):
        model_name = layout_name[: -len(LAYOUT_SUFFIX)]
        layout, model = _versioned(catalog, layout_name), _versioned(catalog, model_name)
        if layout is None or model is None:
            continue
        model_pin, layout_pin = pinned.get(model_name), pinned.get(layout_name)
        if model_pin and layout_pin and model_pin != layout_pin:
            raise InconsistentInputsError(
                f"pinned {model_name}:{model_pin} but {layout_name}:{layout_pin}; the data "
                f"layout is saved with its model: pin both to one version with "
                f"{_fix_hint({model_name: model_pin, layout_name: model_pin})}")
        if model_name in produced and not (model_pin or layout_pin):
            save = model.resolve_save_version()
            if save:  # the run's own model: its layout is written with it
                _pin(layout, save)
                pins[layout_name] = save
            continue
        version = model_pin or layout_pin or _latest(model)
        if version is None:  # no model yet: loading it fails naming the pipeline to run
            continue
        for name, dataset in ((model_name, model), (layout_name, layout)):
            _pin(dataset, version)
            pins[name] = version
    return pins


class RunIntegrityHooks:
    """Orphan cleanup, dead-run marking, committed tokenize sets and model/layout pins (see
    the module doc)."""

    def __init__(self) -> None:
        self._catalog: Any = None
        self._read_versions: dict[str, str] = {}
        self._members: list[str] = []  # the tokenize set, when this run writes all of it
        self._saved: set[str] = set()

    @hook_impl
    def after_catalog_created(self, catalog: Any) -> None:
        self._catalog = catalog  # one hook object serves every session of a process
        self._read_versions = {}
        self._members = []
        self._saved = set()

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        project = Path(run_params.get("project_path") or ".")
        if _is_primary_process():  # another host's pids say nothing about process 0's writers
            for orphan in remove_orphans(project / "data"):
                logger.warning("removed %s, left half-written by a killed run", orphan)
        self._track_process()
        members = self._set_members(catalog)
        self._members = members if set(members) <= set(pipeline.all_outputs()) else []
        pinned = dict(run_params.get("load_versions") or {})
        pins = resolve_committed_inputs(catalog, members, set(pipeline.inputs()), pinned)
        if pins:
            logger.info("reading the %s set %s", COMMITTED_PIPELINE, sorted(set(pins.values())))
        for name, version in align_model_layout_pins(catalog, set(pipeline.inputs()), pinned,
                                                     set(pipeline.all_outputs())).items():
            logger.info("reading %s at %s", name, version)

    @staticmethod
    def _set_members(catalog: Any) -> list[str]:
        from kedro.framework.project import pipelines

        try:
            outputs = pipelines[COMMITTED_PIPELINE].all_outputs()
        except KeyError:
            return []
        return sorted(n for n in outputs if _versioned(catalog, n) is not None)

    @staticmethod
    def _track_process() -> None:
        import mlflow

        run = mlflow.active_run()
        if run is None:
            return
        pid = os.getpid()
        mlflow.set_tags({"process.host": socket.gethostname(), "process.pid": str(pid),
                         "process.start": process_start(pid) or ""})
        client = mlflow.MlflowClient()
        for run_id in mark_dead_runs_killed(client, [run.info.experiment_id], run.info.run_id):
            logger.warning("MLflow run %s was left RUNNING by a process that is gone: "
                           "marked KILLED", run_id)

    @hook_impl
    def after_dataset_loaded(self, dataset_name: str) -> None:
        if dataset_name == SOURCE_DATASET and self._catalog is not None:
            dataset = _versioned(self._catalog, dataset_name)
            if dataset is not None:
                self._read_versions[dataset_name] = dataset.resolve_load_version()

    @hook_impl
    def after_dataset_saved(self, dataset_name: str) -> None:
        """Write the commit record as soon as this run has saved the whole tokenize set (so a
        later node of the same run failing does not leave a complete set uncommitted)."""
        if dataset_name not in self._members or self._catalog is None:
            return
        self._saved.add(dataset_name)
        if self._saved != set(self._members):
            return
        catalog = self._catalog
        record_ds = _versioned(catalog, COMMIT_RECORD)
        if record_ds is None:
            return
        version = record_ds.resolve_save_version()
        source = _versioned(catalog, SOURCE_DATASET)
        if SOURCE_DATASET not in self._read_versions and source is not None:
            self._read_versions[SOURCE_DATASET] = source.resolve_load_version()
        record = {"version": version, "outputs": dict.fromkeys(self._members, version),
                  "inputs": dict(self._read_versions)}
        catalog.get(COMMIT_RECORD).save(record)  # a multi-host wrapper keeps it off disk
        logger.info("tokenize outputs %s committed together", version)
