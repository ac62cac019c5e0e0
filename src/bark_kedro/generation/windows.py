"""Generation windows that match how a model was trained.

Training scales Bark's windows with the model's block size
(:func:`bark_kedro.models.layout.scaled_windows`); a model trained with those sizes must
generate with the same windows, which :func:`fit_windows` sets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bark_kedro.generation.config import GenerationConfig
from bark_kedro.models.config import FineGPTConfig, GPTConfig
from bark_kedro.models.layout import scaled_windows
from bark_kedro.models.tokens import COARSE_RATE_HZ, SEMANTIC_RATE_HZ


def fit_windows(
    config: GenerationConfig,
    coarse: GPTConfig,
    fine: FineGPTConfig,
    coarse_layout: Mapping[str, Any] | None = None,
    fine_layout: Mapping[str, Any] | None = None,
) -> GenerationConfig:
    """``config`` with the coarse and fine windows the training layouts used for these models.

    ``coarse_layout`` / ``fine_layout``: the data layout each model was trained with (the
    ``data`` of its training metadata; default: Bark's windows scaled to each block size).
    At Bark's block size of 1024 this gives Bark's own windows.
    """
    coarse_layout, fine_layout = dict(coarse_layout or {}), dict(fine_layout or {})
    coarse_windows = scaled_windows(
        coarse.block_size,
        semantic_window=coarse_layout.get("semantic_window"),
        max_coarse_history=coarse_layout.get("max_coarse_history"),
        sliding_window_len=coarse_layout.get("sliding_window_len"),
    )
    fine_window = scaled_windows(fine.block_size, fine_window=fine_layout.get("window")).fine_window
    fitted = config.replace(
        semantic_window=coarse_windows.semantic_window,
        max_coarse_history=coarse_windows.max_coarse_history,
        sliding_window_len=coarse_windows.sliding_window_len,
        fine_window=fine_window - fine_window % 2,
        semantic_rate_hz=coarse_layout.get("semantic_rate_hz", SEMANTIC_RATE_HZ),
        coarse_rate_hz=coarse_layout.get("coarse_rate_hz", COARSE_RATE_HZ),
    )
    fitted.check_models(coarse=coarse, fine=fine)
    return fitted
