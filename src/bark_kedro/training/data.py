"""Token tables (see the tokenize pipeline's contract) -> training examples of one stage.

Only utterances present in every table given are used, in the order of the first table
(ingest order). A speaker's preceding utterance (same split) is the history of the
next: the semantic history block, the coarse and fine voice prompts; it is left empty
with probability ``history_drop_prob``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np
import pandas as pd

from bark_kedro.models import BarkVocab, ModelConfig
from bark_kedro.models.layout import STAGES
from bark_kedro.tokenizers.tables import codes_matrix
from bark_kedro.training.batching import BucketBatcher, best_bucket_lengths
from bark_kedro.training.config import StageDataConfig
from bark_kedro.training.layouts import (
    Example,
    coarse_examples,
    fine_examples,
    previous_same_speaker,
    semantic_example,
)

COLUMNS = {
    "text_tokens": ("utterance_id", "speaker", "split", "text_ids"),
    "semantic_tokens": ("utterance_id", "speaker", "split", "semantic_ids"),
    "codec_tokens": ("utterance_id", "speaker", "split", "n_codebooks", "n_frames", "codes"),
}
NEEDED = {
    "semantic": ("text_tokens", "semantic_tokens"),
    "coarse": ("semantic_tokens", "codec_tokens"),
    "fine": ("codec_tokens",),
}
SPLITS = ("train", "validation")


def _check_table(name: str, table: pd.DataFrame) -> None:
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(table).__name__}")
    missing = [c for c in COLUMNS[name] if c not in table.columns]
    if missing:
        raise ValueError(f"{name} lacks columns {missing} (has {list(table.columns)})")
    duplicated = table["utterance_id"][table["utterance_id"].duplicated()]
    if len(duplicated):
        raise ValueError(f"{name} repeats utterance ids {sorted(set(duplicated))[:5]}")


def _joined(stage: str, tables: dict[str, pd.DataFrame | None], split: str):
    """Rows (dicts merged across tables) of ``split`` present in every given table."""
    for name in NEEDED[stage]:
        if tables[name] is None:
            raise ValueError(f"the {stage} stage needs {name}, got None")
    given = {n: t for n, t in tables.items() if t is not None}
    for name, table in given.items():
        _check_table(name, table)
    first = given[NEEDED[stage][0]]
    order = first.loc[first["split"] == split, "utterance_id"].tolist()
    records = {
        name: {r["utterance_id"]: r for r in table.to_dict("records")}
        for name, table in given.items()
    }
    joined = []
    for uid in order:
        if all(uid in by_id for by_id in records.values()):
            merged = {}
            for by_id in records.values():
                merged.update(by_id[uid])
            joined.append(merged)
    return joined, len(order) - len(joined)


@contextmanager
def _naming(row):
    try:
        yield
    except ValueError as err:
        raise ValueError(f"utterance {row['utterance_id']!r}: {err}") from err


def _semantic(rows, history, vocab, data, model_config, skipped):
    out = []
    for row, prev in zip(rows, history, strict=True):
        hist = None if prev is None else rows[prev]["semantic_ids"]
        text, sem = np.asarray(row["text_ids"]), np.asarray(row["semantic_ids"])
        if len(text) == 0 or len(sem) == 0:
            skipped["empty_tokens"] += 1
            continue
        with _naming(row):
            example = semantic_example(
                text, sem, hist, vocab,
                context_len=model_config.merge_context_len,
                block_size=model_config.block_size,
                truncate_text=data.truncate_text,
            )
        if example is not None:
            out.append([example])
        elif len(sem) + 1 > model_config.block_size - model_config.merge_context_len:
            skipped["semantic_too_long"] += 1
        else:
            skipped["text_too_long"] += 1
    return out


def _coarse(rows, history, vocab, data, model_config, skipped):
    out = []
    for row, prev in zip(rows, history, strict=True):
        sem, codes = np.asarray(row["semantic_ids"]), codes_matrix(row)
        if codes.shape[0] < vocab.n_coarse_codebooks:
            raise ValueError(f"utterance {row['utterance_id']!r}: coarse needs "
                             f"{vocab.n_coarse_codebooks} codebooks, got {codes.shape[0]}")
        if len(sem) == 0 or codes.shape[1] == 0:
            skipped["empty_tokens"] += 1
            continue
        prompt = None
        if prev is not None and len(rows[prev]["semantic_ids"]) >= 2:
            prompt = (np.asarray(rows[prev]["semantic_ids"]), codes_matrix(rows[prev]))
        with _naming(row):
            examples = coarse_examples(
                sem, codes, vocab,
                history=prompt,
                loss_on_history=data.loss_on_history,
                semantic_window=data.semantic_window,
                max_coarse_history=data.max_coarse_history,
                sliding_window_len=data.sliding_window_len,
                block_size=model_config.block_size,
                semantic_rate_hz=data.semantic_rate_hz,
                coarse_rate_hz=data.coarse_rate_hz,
            )
        if examples:
            out.append(examples)
        else:
            skipped["too_short"] += 1
    return out


def _fine(rows, history, vocab, data, rng, skipped):
    out = []
    for row, prev in zip(rows, history, strict=True):
        codes = codes_matrix(row)
        if codes.shape[1] == 0:
            skipped["empty_tokens"] += 1
            continue
        n_history = 0
        if prev is not None:
            prompt = codes_matrix(rows[prev])
            n_history = min(data.window // 2, prompt.shape[1])
            codes = np.concatenate([prompt[:, prompt.shape[1] - n_history :], codes], axis=1)
        with _naming(row):
            out.append(fine_examples(
                codes, vocab,
                n_history=n_history,
                rng=rng if data.codebooks == "random" else None,
                n_codes_given=data.n_codes_given,
                window=data.window,
            ))
    return out


def build_stage_examples(
    stage: str,
    text_tokens: pd.DataFrame | None,
    semantic_tokens: pd.DataFrame | None,
    codec_tokens: pd.DataFrame | None,
    vocab: BarkVocab,
    data_config: StageDataConfig,
    model_config: ModelConfig,
    split: str = "train",
    seed: int = 0,
) -> tuple[list[Example], dict[str, int]]:
    """The ``stage`` examples of the ``split`` utterances, and counts.

    Tables a stage does not need may be ``None``. Counts: ``utterances`` (of the split in
    the stage's first table), ``used_utterances``, ``examples``, and per reason the
    utterances left out: ``missing_tokens`` (absent from another table), ``empty_tokens``,
    ``semantic_too_long`` / ``text_too_long`` (semantic), ``too_short`` (coarse).
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    data = data_config.resolved(model_config.block_size)
    tables = {"text_tokens": text_tokens, "semantic_tokens": semantic_tokens,
              "codec_tokens": codec_tokens}
    rows, n_missing = _joined(stage, tables, split)
    rng = np.random.default_rng([seed, STAGES.index(stage), SPLITS.index(split)])
    history = previous_same_speaker([r["speaker"] for r in rows], rng, data.history_drop_prob)
    skipped: Counter = Counter()
    if stage == "semantic":
        per_utterance = _semantic(rows, history, vocab, data, model_config, skipped)
    elif stage == "coarse":
        per_utterance = _coarse(rows, history, vocab, data, model_config, skipped)
    else:
        per_utterance = _fine(rows, history, vocab, data, rng, skipped)
    examples = [e for group in per_utterance for e in group]
    counts = {
        "utterances": len(rows) + n_missing,
        "used_utterances": len(per_utterance),
        "examples": len(examples),
        "missing_tokens": n_missing,
        **{k: int(v) for k, v in sorted(skipped.items())},
    }
    return examples, counts


def max_positions(model_config: ModelConfig) -> int:
    """Model positions an example may have: the block size (the semantic model merges its
    two context blocks before the positions are counted, so its inputs are longer)."""
    return model_config.block_size


def example_lengths(examples: Sequence[Example]) -> np.ndarray:
    """Model positions of each example."""
    return np.asarray([e.length for e in examples], np.int64)


def make_batcher(
    examples: Sequence[Example],
    data_config: StageDataConfig,
    tokens_per_batch: int,
    batch_multiple: int = 1,
    seed: int = 0,
    max_length: int | None = None,
    fill_with_repeats: bool = False,
) -> BucketBatcher:
    """A :class:`BucketBatcher` over ``examples``: at most ``data_config.max_buckets``
    lengths (multiples of ``bucket_multiple``) placed to minimise padding, leftovers
    carried to the next bucket, batch sizes a multiple of ``batch_multiple``; no bucket
    longer than ``max_length`` (the model's positions); ``fill_with_repeats`` fills an
    epoch's last short batch with repeated examples (training) instead of empty rows."""
    if not examples:
        raise ValueError("no examples to batch")
    lengths = example_lengths(examples)
    buckets = best_bucket_lengths(
        lengths, data_config.max_buckets, data_config.bucket_multiple, max_length
    )
    return BucketBatcher(
        lengths,
        buckets=buckets,
        tokens_per_batch=tokens_per_batch,
        groups=[e.group for e in examples],
        seed=seed,
        batch_multiple=batch_multiple,
        carry_remainder=True,
        fill_with_repeats=fill_with_repeats,
    )
