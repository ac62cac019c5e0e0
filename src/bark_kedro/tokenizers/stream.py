"""A stage's token table produced shard by shard, as the shard writer asks for it.

:class:`TokenStream` holds the utterances and a function that tokenizes a group of them
(``corpus.tokenize_<stage>`` in this process, or the Ray engine); it tokenizes nothing until
a :class:`~bark_kedro.tokenizers.shards.ShardWriter` consumes it, one group of
``rows_per_shard`` utterances per shard. Memory is bounded by one shard's tokens (and the
codec's ``group_seconds`` of audio), not the corpus. Each group's rejects and figures go in
the shard's note; :func:`stage_results` reads them back from the written table, so the
rejects and figures are exactly those of the whole-corpus functions. A group's work key
digests the stage, the tokenizer's saved form, the options and the group's utterance rows:
a rerun of the same work skips the shards a killed run completed.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from bark_kedro.tokenizers.corpus import check_some_tokenized
from bark_kedro.tokenizers.shards import ShardedTable, ShardWork
from bark_kedro.tokenizers.tables import (
    CODEC_TOKEN_COLUMNS,
    SEMANTIC_TOKEN_COLUMNS,
    TEXT_TOKEN_COLUMNS,
    UTTERANCE_COLUMNS,
    check_utterances,
    rejected_table,
)

STAGE_COLUMNS = {"text": TEXT_TOKEN_COLUMNS, "semantic": SEMANTIC_TOKEN_COLUMNS,
                 "codec": CODEC_TOKEN_COLUMNS}
# figures of a stage that are not summed over its groups
_NOT_SUMMED = ("audio_s_per_s", "unknown_fraction", "vocab_size")
TokenizeGroup = Callable[[pd.DataFrame], tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]]


def tokenizer_digest(tokenizer: Any) -> str:
    """SHA-256 of a tokenizer's saved form: its ``to_dict()`` (or a dict) as JSON, else the
    files its ``save(path)`` writes."""
    digest = hashlib.sha256()
    if isinstance(tokenizer, dict) or hasattr(tokenizer, "to_dict"):
        data = tokenizer if isinstance(tokenizer, dict) else tokenizer.to_dict()
        digest.update(json.dumps(data, sort_keys=True, default=str).encode())
        return digest.hexdigest()
    if not hasattr(tokenizer, "save"):
        raise TypeError(f"cannot digest a {type(tokenizer).__name__}: it has neither to_dict "
                        "nor save")
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / "tokenizer"  # one name: torch.save puts it in the archive
        tokenizer.save(target)
        files = sorted(p for p in Path(scratch).rglob("*") if p.is_file())
        for path in files:
            digest.update(str(path.relative_to(scratch)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


class TokenStream:
    """The ``stage`` token table of ``utterances``, tokenized by ``tokenize(group)`` one group
    per shard when a writer asks (a :class:`~bark_kedro.tokenizers.shards.ShardWorkSource`).

    ``identity``: everything besides the utterances that the tokens depend on (e.g. the
    tokenizer's digest and the options), in the work keys.
    """

    def __init__(self, stage: str, utterances: pd.DataFrame, tokenize: TokenizeGroup,
                 identity: dict[str, Any]):
        if stage not in STAGE_COLUMNS:
            raise ValueError(f"stage={stage!r}: expected one of {sorted(STAGE_COLUMNS)}")
        check_utterances(utterances)
        self.stage, self.tokenize = stage, tokenize
        self.utterances = utterances.reset_index(drop=True)
        self.columns = list(STAGE_COLUMNS[stage])
        self._identity = json.dumps({"stage": stage, **identity}, sort_keys=True, default=str)

    def __repr__(self) -> str:
        return f"TokenStream({self.stage!r}, {len(self.utterances)} utterances)"

    def shard_work(self, rows_per_shard: int) -> Iterator[ShardWork]:
        """One :class:`ShardWork` per ``rows_per_shard`` utterances, in order."""
        for start in range(0, len(self.utterances), rows_per_shard):
            group = self.utterances.iloc[start:start + rows_per_shard]
            digest = hashlib.sha256(self._identity.encode())
            digest.update(group[UTTERANCE_COLUMNS].to_json(orient="values").encode())
            yield ShardWork(digest.hexdigest(), partial(self._run, group))

    def _run(self, group: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
        table, rejects, stats = self.tokenize(group.reset_index(drop=True))
        return table, {"rejects": rejects.to_dict("records"),
                       "stats": {k: float(v) for k, v in stats.items()}}

    def check(self, notes: list[dict[str, Any]]) -> None:
        """A ValueError (as the whole-corpus functions raise) when every utterance was
        rejected."""
        rejects = [r for note in notes for r in note["rejects"]]
        check_some_tokenized(self.stage, sum(note["rows"] for note in notes), rejects)

    def to_pandas(self, rows_per_shard: int = 10_000) -> tuple[pd.DataFrame, pd.DataFrame,
                                                              dict[str, float]]:
        """``(table, rejects, stats)`` in memory, the same as a written table gives (small
        corpora and tests)."""
        tables, notes = [], []
        for work in self.shard_work(rows_per_shard):
            table, note = work.run()
            tables.append(table)
            notes.append({**note, "rows": len(table)})
        self.check(notes)
        filled = [t for t in tables if len(t)]
        table = (pd.concat(filled, ignore_index=True) if len(filled) > 1 else
                 filled[0] if filled else pd.DataFrame(columns=self.columns))
        return (table, *results_of_notes(notes))


def _local(function: Callable[..., Any], tokenizer: Any, options: dict[str, Any],
           utterances: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]:
    return function(utterances, tokenizer, **options)


def token_stream(stage: str, utterances: pd.DataFrame, tokenizer: Any, engine: str = "local",
                 ray_config: Any = None, progress: bool = True,
                 identity: dict[str, Any] | None = None, **options: Any) -> TokenStream:
    """The :class:`TokenStream` of ``stage`` on ``engine`` (``local``: this process;
    ``ray``: actor pools of ``ray_config``, a :class:`~bark_kedro.tokenizers.ray_engine.
    RayEngineConfig`); ``options`` go to the stage's function (e.g. ``group_seconds``),
    ``identity`` adds what else the tokens depend on (e.g. the codec's batching)."""
    from bark_kedro.tokenizers import corpus, ray_engine

    if engine == "ray":
        tokenize = partial(ray_engine.tokenize_on_ray, stage=stage, tokenizer=tokenizer,
                           config=ray_config, options=options, progress=progress,
                           require_some=False)
        batching = {"batch_rows": ray_config.batch_rows}
    elif engine == "local":
        tokenize = partial(_local, getattr(corpus, f"tokenize_{stage}"), tokenizer,
                           {"progress": progress, "require_some": False, **options})
        batching = {}
    else:
        raise ValueError(f"engine={engine!r}: expected one of {ray_engine.ENGINES}")
    return TokenStream(stage, utterances, tokenize, {
        "tokenizer": tokenizer_digest(tokenizer), "engine": engine, **batching,
        "options": options, **(identity or {})})


def combine_stats(parts: list[dict[str, float]]) -> dict[str, float]:
    """One stage's figures from its groups': counts and seconds summed, ``audio_s_per_s``
    recomputed, ``unknown_fraction`` weighted by ``n_tokens``."""
    if not parts:
        return {}
    combined = {k: float(sum(p.get(k, 0.0) for p in parts)) for k in parts[0]
                if k not in _NOT_SUMMED}
    if "audio_s_per_s" in parts[0]:
        combined["audio_s_per_s"] = combined["audio_seconds"] / max(combined["wall_seconds"],
                                                                     1e-9)
    if "unknown_fraction" in parts[0]:
        unknown = sum(p["unknown_fraction"] * p.get("n_tokens", 0.0) for p in parts)
        combined["unknown_fraction"] = unknown / max(combined.get("n_tokens", 0.0), 1.0)
    if "vocab_size" in parts[0]:
        combined["vocab_size"] = float(parts[0]["vocab_size"])
    return {k: combined[k] for k in parts[0]}  # the order of one group's figures


def results_of_notes(notes: list[dict[str, Any]]) -> tuple[pd.DataFrame, dict[str, float]]:
    """``(rejects, stats)`` of a stage from its groups' notes."""
    rejects = rejected_table([r for note in notes for r in note["rejects"]])
    return rejects, combine_stats([note["stats"] for note in notes])


def stage_results(table: ShardedTable) -> tuple[pd.DataFrame, dict[str, float]]:
    """``(rejects, stats)`` of the stage that wrote ``table`` from a :class:`TokenStream`."""
    if not isinstance(table, ShardedTable) or "work" not in table.manifest:
        raise TypeError(f"expected a sharded token table written from a TokenStream, got "
                        f"{table!r}: the token tables' catalog entries must be "
                        "bark_kedro.datasets.sharded.ShardedTableDataset")
    return results_of_notes(table.work_notes)
