"""Small adapters between pipeline outputs and kedro-mlflow datasets."""

from __future__ import annotations

from collections.abc import Mapping


def as_mlflow_metrics(values: Mapping[str, float], step: int = 0) -> dict[str, dict[str, float]]:
    """Shape a flat ``{name: number}`` dict for ``MlflowMetricsHistoryDataset``."""
    return {name: {"value": float(value), "step": step} for name, value in values.items()}
