"""Adapters between pipeline outputs and MLflow: metric names, step logs, dataset inputs, models.

Metric names follow one scheme, ``<section>/<name>`` (MLflow's UI groups charts on the first
slash and sorts sections and charts by name). A model stage is its own section holding its
training curves (``coarse/train_loss``, ``coarse/val_loss``); its held-out scores, one value
each, follow in ``coarse_heldout/`` (``coarse_heldout/loss``), so a run's charts open on the
curves, not on single bars. The other sections are ``synthesis/``, ``tokens/``, ``utterances/``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import mlflow
from kedro_mlflow.io.metrics import MlflowMetricsHistoryDataset


def metric_key(section: str, name: str) -> str:
    """``<section>/<name>``: one slash, the name's own dots and slashes become underscores."""
    return f"{section}/{name.replace('/', '_').replace('.', '_')}"


def as_mlflow_metrics(values: Mapping[str, float], step: int = 0) -> dict[str, dict[str, float]]:
    """Shape a flat ``{name: number}`` dict for ``MlflowMetricsHistoryDataset``."""
    return {name: {"value": float(value), "step": step} for name, value in values.items()}


def mlflow_step_logger(prefix: str) -> Callable[[int, Mapping[str, float]], None]:
    """A callback logging per-step metrics to the active MLflow run.

    ``prefix`` is ``train_<stage>`` (training steps: ``<stage>/train_<name>``) or
    ``train_<stage>.val`` (evaluations during training: ``<stage>/val_<name>``).
    """
    head, _, split = prefix.partition(".")
    section, split = head.removeprefix("train_"), split or "train"

    def log(step: int, metrics: Mapping[str, float]) -> None:
        if mlflow.active_run() is None:
            return
        numbers = {
            metric_key(section, f"{split}_{name}"): float(value)
            for name, value in metrics.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        }
        mlflow.log_metrics(numbers, step=int(step))

    return log


def log_parameter_counts(section: str, counts: Mapping[str, int]) -> None:
    """``<section>_params/trainable``, ``frozen``, ``total`` of the active run (a section of
    their own, so the stage's curves still come first)."""
    if mlflow.active_run() is None:
        return
    mlflow.log_metrics({metric_key(f"{section}_params", k): float(v) for k, v in counts.items()})


class SectionMetricsDataset(MlflowMetricsHistoryDataset):
    """``MlflowMetricsHistoryDataset`` naming metrics ``<section>/<name>``.

    A name that is already ``<stage>/<name>`` (per-stage scores) goes to the section
    ``<stage>_<stage_label>`` (``coarse_heldout/loss``), after the stage's curves.

    Example catalog entry::

        evaluation_metrics:
          type: bark_kedro.pipelines.tracking.SectionMetricsDataset
          section: synthesis
          stage_label: heldout
    """

    def __init__(self, section: str, stage_label: str = "", **kwargs: Any) -> None:
        # an empty (not None) prefix: kedro-mlflow then leaves the names to this class
        super().__init__(prefix="", **kwargs)
        self._section = section
        self._stage_label = stage_label

    def _name(self, key: str) -> str:
        stage, slash, name = key.partition("/")
        if slash:
            return metric_key(f"{stage}_{self._stage_label}" if self._stage_label else stage, name)
        return metric_key(self._section, key)

    def _build_args_list_from_metric_item(self, key: str, value: Any) -> Any:
        return super()._build_args_list_from_metric_item(self._name(key), value)

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), "section": self._section}


def config_fingerprint(params: Mapping[str, Any]) -> str:
    """A short hash of flat parameters: two runs with the same configuration share it."""
    text = json.dumps({k: str(v) for k, v in sorted(params.items())}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:7]


def run_name(pipeline: str, overrides: Mapping[str, Any], fingerprint: str) -> str:
    """``<pipeline> #<fingerprint> <key>=<value> ...``: the pipeline, the fingerprint (first, so
    runs differ in the run list's narrow name column too) and what ``--params`` changed from the
    configuration (the last two parts of each key)."""
    changed = " ".join(
        f"{'.'.join(str(key).split('.')[-2:])}={value}" for key, value in sorted(overrides.items())
    )
    return " ".join(part for part in (pipeline, f"#{fingerprint}", changed) if part)


def log_dataset_input(name: str, source: str, version: str, context: str) -> None:
    """Record a versioned catalog entry as an MLflow dataset input of the active run."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    digest = hashlib.sha256(f"{source}@{version}".encode()).hexdigest()[:10]
    with warnings.catch_warnings():  # a local path matches two registered source kinds
        warnings.filterwarnings("ignore", message=".*can be interpreted in multiple ways")
        resolved = resolve_dataset_source(source)
    dataset = MetaDataset(resolved, name=name, digest=digest)
    mlflow.log_input(dataset, context=context, tags={"version": version})


class OrbaxStageModel(mlflow.pyfunc.PythonModel):
    """An MLflow model whose artifact is a stage's Orbax directory.

    ``mlflow.pyfunc.load_model(uri).unwrap_python_model().model`` is the Flax model, rebuilt by
    :func:`bark_kedro.models.load_model`. ``predict`` returns the model's config: generation
    needs all three stages, so it runs through ``bark_kedro.generation``, not pyfunc.
    """

    def load_context(self, context: Any) -> None:
        from bark_kedro.models import load_model

        self.model, self.config = load_model(context.artifacts["orbax"])

    def predict(self, context: Any, model_input: list[str], params: dict | None = None
                ) -> list[str]:
        return [json.dumps(self.config.to_dict())]


def register_stage_model(
    name: str, registered_name: str, directory: str | Path, metadata: Mapping[str, Any]
) -> Any:
    """Log ``directory`` (Orbax) as MLflow model ``name`` of the active run and register it
    (MLflow's own "Successfully registered" lines go; the caller logs the version)."""
    from bark_kedro import __version__

    with contextlib.redirect_stderr(io.StringIO()):
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(Path(__file__).with_name("mlflow_stage_model.py")),
            artifacts={"orbax": str(directory)},
            metadata=dict(metadata),
            registered_model_name=registered_name,
            pip_requirements=[f"bark_kedro=={__version__}"],
        )


def dataset_versions(run: Any, context: str | None = None) -> dict[str, str]:
    """``{name: version}`` of a run's dataset inputs (``context``: ``read`` or ``written``)."""
    versions = {}
    for entry in run.inputs.dataset_inputs:
        tags = {tag.key: tag.value for tag in entry.tags}
        if context is None or tags.get("mlflow.data.context") == context:
            versions[entry.dataset.name] = tags["version"]
    return versions
