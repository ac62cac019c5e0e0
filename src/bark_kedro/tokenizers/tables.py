"""The token tables the tokenize pipeline writes (one row per utterance) and their conversions.

Columns (the contract training and evaluation read):

- ``text_tokens``: utterance_id, speaker, split, text, text_ids (int32, the tokenizer's raw
  ids in ``[0, text_vocab_size)``, without Bark's text offset);
- ``semantic_tokens``: utterance_id, speaker, split, duration_s, semantic_ids (int32 in
  ``[0, n_clusters)``);
- ``codec_tokens``: utterance_id, speaker, split, duration_s, n_codebooks, n_frames, codes (int16,
  the ``(n_codebooks, n_frames)`` matrix flattened row-major);
- ``rejected_tokenization``: utterance_id, stage (``text`` | ``semantic`` | ``codec``), reason
  (``"<code>: <detail>"``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

TEXT_TOKEN_COLUMNS = ["utterance_id", "speaker", "split", "text", "text_ids"]
SEMANTIC_TOKEN_COLUMNS = ["utterance_id", "speaker", "split", "duration_s", "semantic_ids"]
CODEC_TOKEN_COLUMNS = ["utterance_id", "speaker", "split", "duration_s", "n_codebooks",
                       "n_frames", "codes"]
REJECTED_COLUMNS = ["utterance_id", "stage", "reason"]
# the tokenizers a rejected utterance can fail in (the `stage` column of rejected_tokenization)
TOKENIZER_STEPS = ("text", "semantic", "codec")
UTTERANCE_COLUMNS = ["utterance_id", "speaker", "split", "text", "duration_s",
                     "audio_16k_path", "audio_24k_path"]


def codes_matrix(row: Mapping[str, Any] | Any) -> np.ndarray:
    """The int16 ``(n_codebooks, n_frames)`` codes of a ``codec_tokens`` row (a Series, dict or
    ``itertuples`` row)."""
    get = row.get if hasattr(row, "get") else lambda name: getattr(row, name)
    codes = np.asarray(get("codes"), dtype=np.int16)
    shape = (int(get("n_codebooks")), int(get("n_frames")))
    if codes.ndim != 1 or codes.size != shape[0] * shape[1]:
        raise ValueError(f"codec_tokens row {get('utterance_id')!r}: {codes.size} codes do not "
                         f"fill n_codebooks x n_frames = {shape[0]} x {shape[1]}")
    return codes.reshape(shape)


def codes_column(matrices: Iterable[np.ndarray]) -> list[np.ndarray]:
    """Flatten ``(n_codebooks, n_frames)`` matrices row-major to the int16 ``codes`` column."""
    out = []
    for i, matrix in enumerate(matrices):
        m = np.asarray(matrix)
        if m.ndim != 2:
            raise ValueError(f"codes[{i}] must be (n_codebooks, n_frames), got shape {m.shape}")
        if m.size and (m.min() < np.iinfo(np.int16).min or m.max() > np.iinfo(np.int16).max):
            raise ValueError(f"codes[{i}] has values outside int16")
        out.append(np.ascontiguousarray(m, dtype=np.int16).reshape(-1))
    return out


def _frame(rows: Sequence[Mapping[str, Any]], columns: list[str]) -> pd.DataFrame:
    table = pd.DataFrame(list(rows), columns=columns)
    for name in ("utterance_id", "speaker", "split", "text", "stage", "reason"):
        if name in table.columns:
            table[name] = table[name].astype(str)
    if "duration_s" in table.columns:
        table["duration_s"] = table["duration_s"].astype(np.float64)
    for name in ("n_codebooks", "n_frames"):
        if name in table.columns:
            table[name] = table[name].astype(np.int64)
    return table


def text_tokens_table(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """A ``text_tokens`` table from row dicts (``text_ids`` made int32 arrays)."""
    rows = [{**r, "text_ids": np.asarray(r["text_ids"], np.int32)} for r in rows]
    return _frame(rows, TEXT_TOKEN_COLUMNS)


def semantic_tokens_table(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """A ``semantic_tokens`` table from row dicts (``semantic_ids`` made int32 arrays)."""
    rows = [{**r, "semantic_ids": np.asarray(r["semantic_ids"], np.int32)} for r in rows]
    return _frame(rows, SEMANTIC_TOKEN_COLUMNS)


def codec_tokens_table(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """A ``codec_tokens`` table from row dicts holding a ``codes`` matrix each."""
    matrices = [r["codes"] for r in rows]
    flat = codes_column(matrices)
    rows = [{**r, "n_codebooks": m.shape[0], "n_frames": m.shape[1], "codes": c}
            for r, m, c in zip(rows, matrices, flat, strict=True)]
    return _frame(rows, CODEC_TOKEN_COLUMNS)


def rejected_table(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """A ``rejected_tokenization`` table from ``{utterance_id, stage, reason}`` dicts
    (``stage`` is one of :data:`TOKENIZER_STEPS`)."""
    unknown = sorted({str(row["stage"]) for row in rows} - set(TOKENIZER_STEPS))
    if unknown:
        raise ValueError(f"rejected_tokenization rows name unknown tokenizer step(s) {unknown}; "
                         f"expected one of {TOKENIZER_STEPS}")
    return _frame(rows, REJECTED_COLUMNS)


def check_utterances(utterances: pd.DataFrame) -> None:
    """Raise a ValueError naming the missing columns or repeated ids of an ``utterances`` table."""
    if not isinstance(utterances, pd.DataFrame):
        raise TypeError(f"utterances must be a pandas DataFrame, got {type(utterances).__name__}")
    missing = [c for c in UTTERANCE_COLUMNS if c not in utterances.columns]
    if missing:
        raise ValueError(f"utterances lacks column(s) {missing}; has {list(utterances.columns)}")
    repeated = utterances["utterance_id"][utterances["utterance_id"].duplicated()]
    if len(repeated):
        raise ValueError(f"utterances repeats utterance ids {sorted(set(repeated))[:5]}")
    bad = sorted(set(utterances["split"]) - {"train", "validation"})
    if bad:
        raise ValueError(f"utterances has unknown split value(s) {bad}; expected train/validation")
