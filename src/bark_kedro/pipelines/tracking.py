"""Small adapters between pipeline outputs and MLflow (kedro-mlflow datasets, step logs)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import mlflow


def as_mlflow_metrics(values: Mapping[str, float], step: int = 0) -> dict[str, dict[str, float]]:
    """Shape a flat ``{name: number}`` dict for ``MlflowMetricsHistoryDataset``."""
    return {name: {"value": float(value), "step": step} for name, value in values.items()}


def mlflow_step_logger(prefix: str) -> Callable[[int, Mapping[str, float]], None]:
    """A callback logging ``{prefix}.{name}`` metrics at a step to the active MLflow run."""

    def log(step: int, metrics: Mapping[str, float]) -> None:
        if mlflow.active_run() is None:
            return
        numbers = {
            f"{prefix}.{name}": float(value)
            for name, value in metrics.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        }
        mlflow.log_metrics(numbers, step=int(step))

    return log
