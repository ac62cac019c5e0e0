"""One stage's training from the token tables (vocabulary, model, examples, loop), and the
teacher-forced metrics of trained stages on the validation split.

This is what the ``train_<stage>`` and ``evaluate`` pipelines run; a notebook can call it
the same way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from bark_kedro.models import BarkVocab, ModelConfig
from bark_kedro.models.layout import STAGES
from bark_kedro.tokenizers.shards import ShardedTable
from bark_kedro.training.config import ModelInitConfig, StageDataConfig, TrainConfig
from bark_kedro.training.examples import (
    NEEDED,
    SPLITS,
    ExampleBuilder,
    StageRecords,
    max_positions,
)
from bark_kedro.training.loop import MetricsCallback, TrainResult, evaluate_examples, train
from bark_kedro.training.mesh import batch_width, make_mesh
from bark_kedro.training.model_init import build_stage_model, stage_vocabulary
from bark_kedro.training.streaming import StreamedBatches

TOKEN_COLUMNS = {"text_tokens": "text_ids", "semantic_tokens": "semantic_ids", "codec_tokens": "codes"}


def run_fingerprint(
    tables: Mapping[str, pd.DataFrame | ShardedTable | None],
    init: ModelInitConfig,
    data: StageDataConfig,
    config: TrainConfig,
) -> str:
    """A short hash of what decides a run's result: the configs and the stage's token tables.

    Runs with the same fingerprint share checkpoints (a restart resumes); new tokens or
    parameters start a new run.
    """
    digest = hashlib.sha256()
    settings = {"init": asdict(init), "data": asdict(data), "train": asdict(config)}
    settings["train"].pop("progress")
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    for name in NEEDED[config.stage]:
        table = tables[name]
        digest.update(name.encode())
        if isinstance(table, ShardedTable):  # its shards' digests, recorded when written
            digest.update(table.digest.encode())
            continue
        for utterance_id, split, ids in zip(
            table["utterance_id"], table["split"], table[TOKEN_COLUMNS[name]], strict=True
        ):
            digest.update(f"{utterance_id}\0{split}\0".encode())
            digest.update(np.ascontiguousarray(ids, dtype=np.int64).tobytes())
    return digest.hexdigest()[:16]


@dataclass
class StageRun:
    """A finished stage training: the loop's result plus what the examples were made of
    and how they were laid out."""

    result: TrainResult
    vocab: BarkVocab
    example_counts: dict[str, dict[str, int]]
    run_dir: Path
    data_layout: dict[str, Any]  # the data config with its sizes resolved for the model

    @property
    def summary(self) -> dict[str, Any]:
        """The loop's summary with the example counts of both splits."""
        counts = {
            f"{split}_{key}": value
            for split, row in self.example_counts.items()
            for key, value in row.items()
        }
        return {**self.result.summary, **counts, "run_dir": str(self.run_dir)}


def stage_streams(
    stage: str,
    tables: Mapping[str, pd.DataFrame | ShardedTable | None],
    vocab: BarkVocab,
    model_config: ModelConfig,
    data: StageDataConfig,
    config: TrainConfig,
    chunk_records: int | None = None,
    records_of: Mapping[str, StageRecords] | None = None,
) -> tuple[dict[str, StreamedBatches], dict[str, dict[str, int]]]:
    """The streamed train and validation batches of ``stage`` and their counts (of the
    records, and of the examples of the records the buckets were chosen from);
    ``chunk_records`` defaults to ``data.chunk_records``; ``records_of`` (per split) the
    records when already joined from ``tables``."""
    width = batch_width(make_mesh(config.mesh))
    streams, counts = {}, {}
    for split in SPLITS:
        records = (records_of or {}).get(split)
        records = StageRecords(stage, tables, split) if records is None else records
        counts[split] = {"utterances": len(records) + records.n_missing,
                         "records": len(records), "missing_tokens": records.n_missing}
        if not len(records):
            hint = ("check the token tables" if split == "train" else "the corpus needs "
                    "utterances in the validation split; see ingest.processing.validation_fraction "
                    "and min_clips_for_validation)")
            raise ValueError(f"no {stage} {split} records: {counts[split]} ({hint})")
        train_split = split == "train"
        builder = ExampleBuilder(stage, vocab, data, model_config, split, config.seed)
        streams[split] = StreamedBatches(
            records, builder, data, config.tokens_per_batch, width,
            seed=config.seed if train_split else 0, max_length=max_positions(model_config),
            fill_with_repeats=train_split, shuffle=train_split, chunk_records=chunk_records)
        counts[split] |= {f"sample_{k}": v for k, v in streams[split].sample_counts.items()
                          if k not in ("utterances", "missing_tokens")}
    return streams, counts


def train_stage_from_tables(
    tables: Mapping[str, pd.DataFrame | ShardedTable],
    text_vocab_size: int,
    semantic_vocab_size: int,
    init: ModelInitConfig,
    data: StageDataConfig,
    config: TrainConfig,
    run_dir: str | Path,
    *,
    on_metrics: MetricsCallback | None = None,
    on_eval: MetricsCallback | None = None,
) -> StageRun:
    """Train ``config.stage`` on the train split of ``tables`` (``text_tokens``,
    ``semantic_tokens``, ``codec_tokens``: DataFrames or sharded tables), validating on the
    validation split; the examples are streamed (:mod:`bark_kedro.training.streaming`),
    ``data.chunk_records`` records at a time.

    Checkpoints go to ``run_dir/<run_fingerprint>``: a run restarted with the same tokens
    and configs resumes from its last checkpoint.
    """
    stage = config.stage
    run_dir = Path(run_dir) / run_fingerprint(tables, init, data, config)
    vocab = stage_vocabulary(init, text_vocab_size, semantic_vocab_size)
    model = build_stage_model(stage, vocab, init, seed=config.seed)
    streams, counts = stage_streams(stage, tables, vocab, model.config, data, config)
    try:
        result = train(model, streams["train"], streams["validation"], config, data, run_dir,
                       on_metrics=on_metrics, on_eval=on_eval, lora=init.lora)
    finally:
        streams["validation"].close()
    layout = data.resolved(model.config.block_size).to_dict()
    return StageRun(result, vocab, counts, run_dir, layout)


def stage_metrics(
    models: Mapping[str, Any],
    tables: Mapping[str, pd.DataFrame | ShardedTable],
    data_configs: Mapping[str, StageDataConfig],
    tokens_per_batch: int = 4096,
    seed: int = 0,
    chunk_records: int | None = None,
) -> dict[str, dict[str, float]]:
    """Teacher-forced loss, perplexity, top-1/top-10 of each stage on the validation split,
    its examples laid out with ``data_configs[stage]`` (the layout the model was trained with)
    and streamed ``chunk_records`` (default: the layout's) records at a time, in index
    order; each process reads only its rows' records."""
    width = batch_width(make_mesh(None))
    out = {}
    for stage in tqdm(STAGES, desc="teacher-forced", unit="stage"):
        model = models[stage]
        records = StageRecords(stage, tables, "validation")
        if not len(records):
            raise ValueError(f"no {stage} validation records to evaluate "
                             f"({records.n_missing} lack tokens of another table)")
        builder = ExampleBuilder(stage, model.config.vocab, data_configs[stage], model.config,
                                 "validation", seed)
        streams = StreamedBatches(records, builder, data_configs[stage], tokens_per_batch,
                                  width, seed=0, max_length=max_positions(model.config),
                                  shuffle=False, chunk_records=chunk_records)
        try:
            metrics = evaluate_examples(model, streams, stage, tokens_per_batch,
                                        data_config=data_configs[stage])
        finally:
            streams.close()
        out[stage] = {**metrics, "examples": float(streams.first_epoch_examples)}
    return out
