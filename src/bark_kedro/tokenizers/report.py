"""The tokenization report: per-stage throughput and counts, rejects by stage and reason."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import pandas as pd

from bark_kedro.mappings import flatten


def summarize_tokenization(
    n_utterances: int, stage_stats: Mapping[str, Mapping[str, float]], rejects: pd.DataFrame,
    tokenizers: Mapping[str, str],
) -> dict[str, Any]:
    """A JSON-able report: ``n_utterances``, ``n_trainable`` (in no stage's rejects), per-stage
    figures (``stage_stats``), reject counts by stage and by ``stage.code``, and ``tokenizers``
    (which text tokenizer, semantic features and codec weights were used)."""
    codes = Counter(f"{stage}.{str(reason).split(':', 1)[0]}"
                    for stage, reason in zip(rejects["stage"], rejects["reason"], strict=True))
    return {
        "n_utterances": int(n_utterances),
        "n_trainable": int(n_utterances - rejects["utterance_id"].nunique()),
        "n_rejected": int(len(rejects)),
        "rejected_by_stage": {k: int(v) for k, v in Counter(rejects["stage"]).items()},
        "rejected_by_reason": dict(sorted(codes.items())),
        "stages": {name: dict(stats) for name, stats in stage_stats.items()},
        "tokenizers": dict(tokenizers),
    }


def numeric_leaves(report: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """``{"a": {"b": 1.0}, "c": "x"}`` -> ``{"a.b": 1.0}``: the numbers of a report, flattened."""
    return {name: float(value) for name, value in flatten(report, prefix).items()
            if isinstance(value, int | float) and not isinstance(value, bool)}
