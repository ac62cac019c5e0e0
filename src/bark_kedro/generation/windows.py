"""Generation windows that match how a model was trained.

The training layouts scale Bark's windows with the model's block size
(:meth:`bark_kedro.training.StageDataConfig.resolved`); a model trained with those
defaults must generate with the same windows, which :func:`fit_windows` sets.
"""

from __future__ import annotations

from bark_kedro.generation.config import GenerationConfig
from bark_kedro.models.config import FineGPTConfig, GPTConfig
from bark_kedro.training.config import StageDataConfig


def fit_windows(
    config: GenerationConfig,
    coarse: GPTConfig,
    fine: FineGPTConfig,
    data: StageDataConfig | None = None,
) -> GenerationConfig:
    """``config`` with the coarse and fine windows the training layouts used for these models.

    ``data`` is the training data config of the coarse and fine stages (default: the
    defaults, Bark's windows scaled to each block size). At Bark's block size of 1024 this
    gives Bark's own windows.
    """
    data = data or StageDataConfig()
    coarse_data = data.resolved(coarse.block_size)
    fine_data = data.resolved(fine.block_size)
    fitted = config.replace(
        semantic_window=coarse_data.semantic_window,
        max_coarse_history=coarse_data.max_coarse_history,
        sliding_window_len=coarse_data.sliding_window_len,
        fine_window=fine_data.window - fine_data.window % 2,
        semantic_rate_hz=coarse_data.semantic_rate_hz,
        coarse_rate_hz=coarse_data.coarse_rate_hz,
    )
    fitted.check_models(coarse=coarse, fine=fine)
    return fitted
