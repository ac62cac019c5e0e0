"""Tokenization on Ray: the utterances as a Ray Dataset, each tokenizer a pool of actors.

The text, semantic and codec stages run as ``Dataset.map_batches`` over a pool of
``RayEngineConfig.actors`` actors; each actor receives the fitted tokenizer once, when it
starts, and tokenizes batches of ``batch_rows`` utterances with the same per-batch
functions as the local engine (:mod:`bark_kedro.tokenizers.corpus`), so both engines give
the same token tables and the same rejects (``reason = "<code>: <detail>"``).

``ray.init`` starts a local Ray unless ``address`` (or ``RAY_ADDRESS``) names a cluster
to join; every node of that cluster needs this package installed and the corpus's audio
at the paths the utterances table gives (storage every node sees).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bark_kedro.tokenizers import corpus
from bark_kedro.tokenizers.tables import (
    CODEC_TOKEN_COLUMNS,
    SEMANTIC_TOKEN_COLUMNS,
    TEXT_TOKEN_COLUMNS,
    check_utterances,
    rejected_table,
)

ENGINES = ("local", "ray")
_ORDER, _REASON = "_order", "_reject_reason"
# token-table columns of each stage, and its id column with the ids' dtype
_COLUMNS = {"text": TEXT_TOKEN_COLUMNS, "semantic": SEMANTIC_TOKEN_COLUMNS,
            "codec": CODEC_TOKEN_COLUMNS}
_IDS = {"text": ("text_ids", np.int32), "semantic": ("semantic_ids", np.int32),
        "codec": ("codes", np.int16)}
# placeholders of a reject's row in the actors' output (never part of a token table)
_FILL = {"text": "", "duration_s": np.nan, "n_codebooks": 0, "n_frames": 0}
_CONNECTING = threading.Lock()  # nodes running in threads start one Ray between them
# Ray gives its node agents 15 s to start: a fully loaded machine can miss that
_LOCAL_START_ATTEMPTS = 3
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RayEngineConfig:
    """How the Ray engine runs: the cluster, the actor pools and their resources.

    ``address``: a Ray cluster to join (``ray://...`` or ``host:port``; default
    ``RAY_ADDRESS``, else a local Ray of ``local_cpus`` CPUs, default all). ``actors``:
    actors per tokenizer, each reserving ``num_cpus`` CPUs; ``num_gpus``: GPUs per
    semantic and codec actor (the text tokenizer never takes one). ``batch_rows``:
    utterances per ``map_batches`` batch.
    """

    address: str | None = None
    actors: int = 2
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    batch_rows: int = 16
    local_cpus: int | None = None

    def __post_init__(self) -> None:
        for name in ("actors", "batch_rows", "local_cpus"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"RayEngineConfig.{name}={value!r}: must be an int >= 1")
        for name in ("num_cpus", "num_gpus"):
            if getattr(self, name) < 0:
                raise ValueError(f"RayEngineConfig.{name}={getattr(self, name)!r}: must be >= 0")


def connect(config: RayEngineConfig) -> None:
    """``ray.init``: join ``config.address`` / ``RAY_ADDRESS``, else start a local Ray
    (once per process; an already connected driver is reused)."""
    import ray

    with _CONNECTING:
        if ray.is_initialized():
            return
        address = config.address or os.environ.get("RAY_ADDRESS") or None
        if address:
            ray.init(address=address, log_to_driver=True)
            return
        for attempt in range(1, _LOCAL_START_ATTEMPTS + 1):
            try:
                ray.init(num_cpus=config.local_cpus, include_dashboard=False)
                return
            except Exception as err:  # noqa: BLE001 - Ray raises a bare Exception on time-outs
                ray.shutdown()
                if "timed out during startup" not in str(err) or attempt == _LOCAL_START_ATTEMPTS:
                    raise
                logger.warning("a local Ray did not start in time (%s); starting again", err)


class _TokenizerActor:
    """One actor of a pool: holds the stage's tokenizer, tokenizes batches of utterances."""

    def __init__(self, stage: str, tokenizer: Any, options: dict[str, Any]):
        self.stage, self.tokenizer, self.options = stage, tokenizer, options

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        utterances = batch.drop(columns=[_ORDER]).reset_index(drop=True)
        table, rejects, _ = tokenize_batch(self.stage, utterances, self.tokenizer, self.options)
        return _actor_output(self.stage, batch, table, rejects)


def tokenize_batch(stage: str, utterances: pd.DataFrame, tokenizer: Any,
                   options: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """One batch of utterances through ``stage``'s local function (a batch may be all
    rejects: the corpus-wide check comes after every batch)."""
    functions: dict[str, Callable[..., tuple]] = {
        "text": corpus.tokenize_text, "semantic": corpus.tokenize_semantic,
        "codec": corpus.tokenize_codec}
    return functions[stage](utterances, tokenizer, **options, progress=False,
                            require_some=False)


def _actor_output(stage: str, batch: pd.DataFrame, table: pd.DataFrame,
                  rejects: pd.DataFrame) -> pd.DataFrame:
    """Token rows and reject rows in one frame (Ray's output is one table per batch)."""
    order = dict(zip(batch["utterance_id"], batch[_ORDER], strict=True))
    ids_column, dtype = _IDS[stage]
    tokens = table.assign(**{_ORDER: table["utterance_id"].map(order), _REASON: ""})
    rows = batch.set_index("utterance_id").loc[rejects["utterance_id"]]
    rejected = pd.DataFrame({
        name: (rejects["utterance_id"].to_numpy() if name == "utterance_id"
               else [np.zeros(0, dtype)] * len(rejects) if name == ids_column
               else rows[name].to_numpy() if name in ("speaker", "split")
               else [_FILL[name]] * len(rejects))
        for name in _COLUMNS[stage]})
    rejected[_ORDER] = rows[_ORDER].to_numpy()
    rejected[_REASON] = rejects["reason"].to_numpy()
    out = pd.concat([tokens, rejected], ignore_index=True) if len(rejected) else tokens
    return out.sort_values(_ORDER, kind="stable").reset_index(drop=True)


def _split(stage: str, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """An actor output batch as ``(token rows, rejects)`` in the local engine's dtypes."""
    ids_column, dtype = _IDS[stage]
    rejected = frame[_REASON] != ""
    tokens = frame.loc[~rejected, _COLUMNS[stage]].reset_index(drop=True)
    tokens[ids_column] = [np.asarray(ids, dtype) for ids in tokens[ids_column]]
    for name in ("utterance_id", "speaker", "split") + (("text",) if stage == "text" else ()):
        tokens[name] = tokens[name].astype(str)
    if "duration_s" in tokens:
        tokens["duration_s"] = tokens["duration_s"].astype(np.float64)
    for name in ("n_codebooks", "n_frames"):
        if name in tokens:
            tokens[name] = tokens[name].astype(np.int64)
    rejects = rejected_table([
        {"utterance_id": uid, "stage": stage, "reason": reason}
        for uid, reason in zip(frame.loc[rejected, "utterance_id"],
                               frame.loc[rejected, _REASON], strict=True)])
    return tokens, rejects


def iter_token_batches(utterances: pd.DataFrame, stage: str, tokenizer: Any,
                       config: RayEngineConfig, options: dict[str, Any] | None = None,
                       progress: bool = True) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """``(token rows, rejects)`` of ``stage`` per batch, in the utterances' order, as the
    actors finish them (what a writer of token shards consumes)."""
    import ray

    if stage not in _COLUMNS:
        raise ValueError(f"stage={stage!r}: expected one of {sorted(_COLUMNS)}")
    check_utterances(utterances)
    connect(config)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = progress
    rows = utterances.reset_index(drop=True).assign(**{_ORDER: np.arange(len(utterances))})
    # one block per batch, so that every actor of the pool gets work
    dataset = ray.data.from_pandas([rows.iloc[start:start + config.batch_rows]
                                    for start in range(0, max(len(rows), 1), config.batch_rows)])
    tokenized = dataset.map_batches(
        _TokenizerActor, batch_format="pandas", batch_size=config.batch_rows,
        fn_constructor_kwargs={"stage": stage, "tokenizer": tokenizer,
                               "options": options or {}},
        concurrency=config.actors, num_cpus=config.num_cpus,
        num_gpus=0 if stage == "text" else config.num_gpus)
    for frame in tokenized.iter_batches(batch_format="pandas", batch_size=None):
        yield _split(stage, frame)


def tokenize_on_ray(utterances: pd.DataFrame, stage: str, tokenizer: Any,
                    config: RayEngineConfig, options: dict[str, Any] | None = None,
                    progress: bool = True, require_some: bool = True
                    ) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """``(table, rejects, stats)`` of ``stage`` as the local ``corpus.tokenize_<stage>``
    gives them (``options``: its extra arguments, e.g. the codec's ``group_seconds``;
    ``require_some=False``: a group of a larger corpus may be all rejects)."""
    started = time.perf_counter()
    pieces = list(iter_token_batches(utterances, stage, tokenizer, config, options, progress))
    tables = [table for table, _ in pieces if len(table)]
    table = (pd.concat(tables, ignore_index=True) if tables
             else pd.DataFrame(columns=_COLUMNS[stage]))
    rejects = [r for _, r in pieces if len(r)]
    rejects = pd.concat(rejects, ignore_index=True) if rejects else rejected_table([])
    if require_some:
        corpus.check_some_tokenized(stage, len(table), rejects)
    wall = max(time.perf_counter() - started, 1e-9)
    audio_s = float(utterances["duration_s"].sum())
    stats = {"audio_seconds": audio_s, "wall_seconds": wall, "audio_s_per_s": audio_s / wall,
             "n_tokenized": float(len(table)), "n_rejected": float(len(rejects))}
    if stage == "text":
        stats.update(corpus.text_id_stats(table, tokenizer))
    return table, rejects, stats
