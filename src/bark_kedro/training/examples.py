"""Token tables (see the tokenize pipeline's contract) -> training examples of one stage.

:class:`StageRecords` is the joined token rows of one stage's split, read lazily from the
tables' indexes (a :class:`~bark_kedro.tokenizers.shards.ShardedTable` is read a row group
at a time; a DataFrame works too, for small corpora and tests): only utterances present in
every table given are used, in the order of the stage's first table (ingest order). A
speaker's preceding utterance (same split) is the history of the next: the semantic history
block, the coarse and fine voice prompts; it is left empty with probability
``history_drop_prob``, drawn per record from ``(seed, stage, split, record)`` like the fine
stage's random codebooks, so a record's examples do not depend on which others were read.
:class:`ExampleBuilder` turns one record into its examples (a Grain ``MapTransform``);
:func:`build_stage_examples` runs the same code over every record, in memory.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import grain
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from bark_kedro.models import BarkVocab, ModelConfig
from bark_kedro.models.layout import STAGES
from bark_kedro.tokenizers.shards import ShardedTable, row_lengths
from bark_kedro.tokenizers.tables import codes_matrix
from bark_kedro.training.batching import BucketBatcher, best_bucket_lengths
from bark_kedro.training.config import StageDataConfig
from bark_kedro.training.layouts import (
    Example,
    coarse_examples,
    fine_examples,
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
Table = pd.DataFrame | ShardedTable


def _check_table(name: str, table: Table) -> None:
    if isinstance(table, ShardedTable):
        columns = table.columns
    elif isinstance(table, pd.DataFrame):
        columns = list(table.columns)
    else:
        raise TypeError(f"{name} must be a pandas DataFrame or a ShardedTable, got "
                        f"{type(table).__name__}")
    missing = [c for c in COLUMNS[name] if c not in columns]
    if missing:
        raise ValueError(f"{name} lacks columns {missing} (has {columns})")
    if isinstance(table, pd.DataFrame):
        duplicated = table["utterance_id"][table["utterance_id"].duplicated()]
        if len(duplicated):
            raise ValueError(f"{name} repeats utterance ids {sorted(set(duplicated))[:5]}")


def _index_of(table: Table) -> pd.DataFrame:
    if isinstance(table, ShardedTable):
        return table.index  # read once per table, compact (see ShardedTable.index)
    return pd.DataFrame({"utterance_id": table["utterance_id"].astype(str).to_numpy(),
                         "speaker": pd.Categorical(table["speaker"].astype(str)),
                         "split": pd.Categorical(table["split"].astype(str)),
                         "shard": np.zeros(len(table), np.int32),
                         "row": np.arange(len(table), dtype=np.int32),
                         "length": row_lengths(table)})


def _arrow(values) -> pa.Array:
    """Strings as one Arrow ``large_string`` array (no Python objects on the way)."""
    array = pa.array(values)
    array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    return array if array.type == pa.large_string() else array.cast(pa.large_string())


def previous_same_speaker_index(speakers: Sequence) -> np.ndarray:
    """For each record, the index of the previous one by the same speaker, or -1."""
    if not isinstance(speakers, (pd.Categorical, pd.Series, pd.Index, np.ndarray)):
        speakers = np.asarray(speakers, dtype=object)
    codes = pd.factorize(speakers)[0]
    order = np.argsort(codes, kind="stable")  # by speaker, in record order within one
    out = np.full(len(codes), -1, np.int64)
    same = codes[order[1:]] == codes[order[:-1]]
    out[order[1:][same]] = order[:-1][same]
    return out


class StageRecords:
    """The joined token rows of one stage's ``split`` (see the module doc): a Grain random
    access data source whose record ``i`` is ``{"index", "row", "previous"}`` (``row`` and
    ``previous``, the same speaker's preceding record or ``None``, merge the rows of the
    tables the stage needs). Built from the indexes only; rows are read on access.
    :meth:`placeholder` is a record of the same lengths (from the index) with zero tokens,
    which lays out into examples of the same shapes without reading any row.

    Per record it keeps only compact arrays: ``utterance_ids`` (Arrow strings),
    ``speakers`` (a categorical), ``previous`` and per table the shard, row and length
    (32-bit integers); the tables' indexes are not copied."""

    def __init__(self, stage: str, tables: Mapping[str, Table | None], split: str = "train"):
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        for name in NEEDED[stage]:
            if tables.get(name) is None:
                raise ValueError(f"the {stage} stage needs {name}, got None")
        given = {n: t for n, t in tables.items() if t is not None}
        for name, table in given.items():
            _check_table(name, table)
        self.stage, self.split = stage, split
        self.tables = {n: given[n] for n in NEEDED[stage]}
        indexes = {n: _index_of(t) for n, t in given.items()}
        first = indexes[NEEDED[stage][0]]
        first_ids = _arrow(first["utterance_id"])
        in_split = np.flatnonzero((first["split"] == split).to_numpy())
        ids = first_ids.take(pa.array(in_split))
        keep = np.ones(len(ids), bool)
        rows = {}  # per table: the index row of each record (-1: absent)
        for name, index in indexes.items():
            other = first_ids if index is first else _arrow(index["utterance_id"])
            if other is first_ids or other.equals(first_ids):
                rows[name] = in_split  # the same utterances in the same order (the rule)
            else:
                found = pc.index_in(ids, value_set=other).fill_null(-1)
                rows[name] = found.to_numpy(zero_copy_only=False).astype(np.int64)
            keep &= rows[name] >= 0
        self.n_missing = int((~keep).sum())
        self.utterance_ids = pd.array(ids.filter(pa.array(keep)), dtype=pd.StringDtype("pyarrow"))
        self.speakers = pd.Categorical(first["speaker"]).take(in_split[keep])
        self.previous = previous_same_speaker_index(self.speakers).astype(np.int32)
        self.locations, self.lengths = {}, {}
        for name in self.tables:
            index, at = indexes[name], rows[name][keep]
            self.locations[name] = (index["shard"].to_numpy(np.int32)[at],
                                    index["row"].to_numpy(np.int32)[at])
            self.lengths[name] = index["length"].to_numpy(np.int32)[at]
        self._frames: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.utterance_ids)

    def __repr__(self) -> str:
        return f"StageRecords({self.stage!r}, {self.split!r}, {len(self)} records)"

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_frames", "_lock")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _frames={}, _lock=threading.Lock())

    def _row(self, i: int) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for name, table in self.tables.items():
            shard, row = self.locations[name][0][i], self.locations[name][1][i]
            if isinstance(table, ShardedTable):
                merged.update(table.record(int(shard), int(row)))
            else:
                with self._lock:
                    if name not in self._frames:
                        self._frames[name] = table.to_dict("records")
                merged.update(self._frames[name][int(row)])
        return merged

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self._record(int(i), self._row)

    def placeholder(self, i: int, n_codebooks: int) -> dict[str, Any]:
        """Record ``i`` with zero tokens of its lengths (``n_codebooks`` codebooks): no row is
        read. Layouts depend on lengths only, so its examples have the real ones' shapes."""
        return self._record(int(i), lambda j: self._zeros_row(j, n_codebooks))

    def _record(self, i: int, row) -> dict[str, Any]:
        if not 0 <= i < len(self):
            raise IndexError(f"record {i} of {len(self)}")
        prev = int(self.previous[i])
        return {"index": i, "row": row(i), "previous": None if prev < 0 else row(prev)}

    def _zeros_row(self, i: int, n_codebooks: int) -> dict[str, Any]:
        row: dict[str, Any] = {"utterance_id": self.utterance_ids[i],
                               "speaker": self.speakers[i], "split": self.split}
        for name in self.tables:
            n = int(self.lengths[name][i])
            if name == "codec_tokens":
                row |= {"n_codebooks": n_codebooks, "n_frames": n,
                        "codes": np.zeros(n_codebooks * n, np.int16)}
            else:
                row[COLUMNS[name][-1]] = np.zeros(n, np.int32)
        return row


@contextmanager
def _naming(row):
    try:
        yield
    except ValueError as err:
        raise ValueError(f"utterance {row['utterance_id']!r}: {err}") from err


@dataclass
class RecordExamples:
    """The examples of one record, or why it has none (``skipped``)."""

    index: int
    examples: list[Example] = field(default_factory=list)
    skipped: str | None = None


class ExampleBuilder(grain.transforms.Map):
    """A record of :class:`StageRecords` -> its :class:`RecordExamples` (the layout functions
    of :mod:`bark_kedro.training.layouts`)."""

    def __init__(self, stage: str, vocab: BarkVocab, data_config: StageDataConfig,
                 model_config: ModelConfig, split: str = "train", seed: int = 0):
        self.stage, self.vocab, self.model_config = stage, vocab, model_config
        self.data = data_config.resolved(model_config.block_size)
        self.key = [seed, STAGES.index(stage), SPLITS.index(split)]

    def map(self, record: dict[str, Any]) -> RecordExamples:
        rng = np.random.default_rng([*self.key, record["index"]])
        previous = record["previous"]
        if previous is not None and rng.random() < self.data.history_drop_prob:
            previous = None
        build = {"semantic": self._semantic, "coarse": self._coarse, "fine": self._fine}
        examples, skipped = build[self.stage](record["row"], previous, rng)
        return RecordExamples(record["index"], examples, skipped)

    def shapes(self, records: StageRecords, i: int) -> RecordExamples:
        """The examples record ``i`` of ``records`` gives, laid out from its
        :meth:`~StageRecords.placeholder` (lengths and groups right, tokens zero)."""
        return self.map(records.placeholder(i, self.vocab.n_fine_codebooks))

    def _semantic(self, row, prev, rng):
        cfg = self.model_config
        hist = None if prev is None else prev["semantic_ids"]
        text, sem = np.asarray(row["text_ids"]), np.asarray(row["semantic_ids"])
        if len(text) == 0 or len(sem) == 0:
            return [], "empty_tokens"
        with _naming(row):
            example = semantic_example(text, sem, hist, self.vocab,
                                       context_len=cfg.merge_context_len,
                                       block_size=cfg.block_size,
                                       truncate_text=self.data.truncate_text)
        if example is not None:
            return [example], None
        if len(sem) + 1 > cfg.block_size - cfg.merge_context_len:
            return [], "semantic_too_long"
        return [], "text_too_long"

    def _coarse(self, row, prev, rng):
        data, vocab = self.data, self.vocab
        sem, codes = np.asarray(row["semantic_ids"]), codes_matrix(row)
        if codes.shape[0] < vocab.n_coarse_codebooks:
            raise ValueError(f"utterance {row['utterance_id']!r}: coarse needs "
                             f"{vocab.n_coarse_codebooks} codebooks, got {codes.shape[0]}")
        if len(sem) == 0 or codes.shape[1] == 0:
            return [], "empty_tokens"
        prompt = None
        if prev is not None and len(prev["semantic_ids"]) >= 2:
            prompt = (np.asarray(prev["semantic_ids"]), codes_matrix(prev))
        with _naming(row):
            examples = coarse_examples(
                sem, codes, vocab, history=prompt, loss_on_history=data.loss_on_history,
                semantic_window=data.semantic_window,
                max_coarse_history=data.max_coarse_history,
                sliding_window_len=data.sliding_window_len,
                block_size=self.model_config.block_size,
                semantic_rate_hz=data.semantic_rate_hz, coarse_rate_hz=data.coarse_rate_hz)
        return (examples, None) if examples else ([], "too_short")

    def _fine(self, row, prev, rng):
        data = self.data
        codes = codes_matrix(row)
        if codes.shape[1] == 0:
            return [], "empty_tokens"
        n_history = 0
        if prev is not None:
            prompt = codes_matrix(prev)
            n_history = min(data.window // 2, prompt.shape[1])
            codes = np.concatenate([prompt[:, prompt.shape[1] - n_history:], codes], axis=1)
        with _naming(row):
            return fine_examples(codes, self.vocab, n_history=n_history,
                                 rng=rng if data.codebooks == "random" else None,
                                 n_codes_given=data.n_codes_given, window=data.window), None


def count_examples(records: StageRecords, built: Sequence[RecordExamples]) -> dict[str, int]:
    """The counts :func:`build_stage_examples` reports for ``built`` records."""
    skipped = Counter(r.skipped for r in built if r.skipped)
    return {
        "utterances": len(records) + records.n_missing,
        "used_utterances": sum(1 for r in built if r.examples),
        "examples": sum(len(r.examples) for r in built),
        "missing_tokens": records.n_missing,
        **{k: int(v) for k, v in sorted(skipped.items())},
    }


def build_stage_examples(
    stage: str,
    text_tokens: Table | None,
    semantic_tokens: Table | None,
    codec_tokens: Table | None,
    vocab: BarkVocab,
    data_config: StageDataConfig,
    model_config: ModelConfig,
    split: str = "train",
    seed: int = 0,
) -> tuple[list[Example], dict[str, int]]:
    """Every ``stage`` example of the ``split`` utterances, in memory, and counts.

    Tables a stage does not need may be ``None``. Counts: ``utterances`` (of the split in
    the stage's first table), ``used_utterances``, ``examples``, and per reason the
    utterances left out: ``missing_tokens`` (absent from another table), ``empty_tokens``,
    ``semantic_too_long`` / ``text_too_long`` (semantic), ``too_short`` (coarse).
    """
    records = StageRecords(stage, {"text_tokens": text_tokens,
                                   "semantic_tokens": semantic_tokens,
                                   "codec_tokens": codec_tokens}, split)
    builder = ExampleBuilder(stage, vocab, data_config, model_config, split, seed)
    built = [builder.map(records[i]) for i in range(len(records))]
    return [e for r in built for e in r.examples], count_examples(records, built)


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
    carried to the next bucket, batch sizes a multiple of ``batch_multiple`` (the plan does
    not depend on it otherwise: every process holds every example); no bucket
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
