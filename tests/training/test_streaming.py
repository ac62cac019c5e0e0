"""Training input streamed from sharded token tables with Grain."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bark_kedro.tokenizers.shards import write_shards
from bark_kedro.training import (
    ModelInitConfig,
    OptimizerConfig,
    StageDataConfig,
    TrainConfig,
    build_stage_examples,
    build_stage_model,
    stage_vocab,
    train,
)
from bark_kedro.training.batching import DataPosition
from bark_kedro.training.examples import ExampleBuilder, StageRecords, make_batcher
from bark_kedro.training.streaming import StreamedBatches
from tests.training.synthetic import token_tables

VOCAB = stage_vocab(40, 64, 1024)
NAMES = ("text_tokens", "semantic_tokens", "codec_tokens")


@pytest.fixture(scope="module")
def frames():
    return dict(zip(NAMES, token_tables(VOCAB, n_utterances=30, n_speakers=3), strict=True))


@pytest.fixture(scope="module")
def shards(frames, tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    return {name: write_shards(table, root / name, rows_per_shard=7)
            for name, table in frames.items()}


def _model(stage):
    return build_stage_model(stage, VOCAB, ModelInitConfig(preset="test"), seed=1)


def _same_examples(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        for field in ("inputs", "targets", "loss_mask", "codebook"):
            u, v = getattr(x, field), getattr(y, field)
            assert (u is None) == (v is None)
            if u is not None:
                np.testing.assert_array_equal(u, v, err_msg=field)


@pytest.mark.parametrize("stage", ["semantic", "coarse", "fine"])
def test_records_read_from_shards_give_the_in_memory_examples(stage, frames, shards):
    model = _model(stage)
    data = StageDataConfig(codebooks="random")
    for split in ("train", "validation"):
        in_memory, counts = build_stage_examples(stage, *frames.values(), VOCAB, data,
                                                 model.config, split, seed=4)
        records = StageRecords(stage, shards, split)
        builder = ExampleBuilder(stage, VOCAB, data, model.config, split, seed=4)
        streamed = [e for i in range(len(records)) for e in builder.map(records[i]).examples]
        _same_examples(streamed, in_memory)
        assert counts["used_utterances"] == len(records) == (
            frames["codec_tokens"]["split"] == split).sum()


def test_history_is_the_same_speakers_preceding_record(shards, frames):
    records = StageRecords("coarse", shards, "train")
    train = frames["semantic_tokens"][frames["semantic_tokens"]["split"] == "train"]
    for i in range(len(records)):
        record = records[i]
        before = train.iloc[:i]
        same = before[before["speaker"] == record["row"]["speaker"]]
        if same.empty:
            assert record["previous"] is None
        else:
            assert record["previous"]["utterance_id"] == same["utterance_id"].iloc[-1]


def _streams(stage, tables, shuffle, chunk_records=4096, **kwargs):
    model = _model(stage)
    data = StageDataConfig(max_buckets=2)
    records = StageRecords(stage, tables, "train")
    builder = ExampleBuilder(stage, VOCAB, data, model.config, "train", seed=3)
    return model, data, StreamedBatches(records, builder, data, 1024, seed=3,
                                        max_length=model.config.block_size,
                                        fill_with_repeats=True, shuffle=shuffle,
                                        chunk_records=chunk_records, **kwargs)


@pytest.mark.slow
def test_streamed_training_matches_in_memory_training_step_for_step(frames, shards, tmp_path):
    model, data, streams = _streams("coarse", shards, shuffle=False)
    examples, _ = build_stage_examples("coarse", *frames.values(), VOCAB, data, model.config,
                                       "train", seed=3)
    val, _ = build_stage_examples("coarse", *frames.values(), VOCAB, data, model.config,
                                  "validation", seed=3)
    batcher = make_batcher(examples, data, 1024, 1, 3, model.config.block_size,
                           fill_with_repeats=True)
    np.testing.assert_array_equal(streams.buckets, batcher.buckets)
    for (_, a), (_, b) in zip(itertools.islice(streams.iterate(), 12),
                              batcher.iterate(examples), strict=False):
        assert int(a.pop("n_positions")) == int(b["lengths"].sum())
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    config = TrainConfig(stage="coarse", steps=4, tokens_per_batch=1024, eval_every=4,
                         checkpoint_every=4, seed=3, progress=False,
                         optimizer=OptimizerConfig(learning_rate=1e-2, warmup_steps=1))
    streamed = train(model, streams, val, config, data, tmp_path / "streamed")
    in_memory = train(_model("coarse"), examples, val, config, data, tmp_path / "memory")
    assert [r["loss"] for r in streamed.history["train"]] == [
        r["loss"] for r in in_memory.history["train"]]
    assert streamed.summary["final_val_loss"] == in_memory.summary["final_val_loss"]


def test_shuffled_chunks_cover_every_example_once_per_epoch(frames, shards):
    _, _, streams = _streams("fine", shards, shuffle=True, chunk_records=8)
    assert streams.n_chunks == 3
    seen = []
    for epoch in range(2):
        order = [int(streams.epoch_order(epoch)[i]) for i in range(streams.n_records)]
        assert sorted(order) == list(range(streams.n_records))
        seen.append(order)
    assert seen[0] != seen[1]  # a new global shuffle each epoch
    padding = [streams.chunk(0, c).padding_fraction for c in range(streams.n_chunks)]
    assert all(0.0 <= p < 1.0 for p in padding)
    streams.close()


def test_resuming_from_a_position_continues_the_same_batches(shards):
    _, _, streams = _streams("coarse", shards, shuffle=True, chunk_records=8)
    run = list(itertools.islice(streams.iterate(), 20))
    assert {p.chunk for p, _ in run} >= {0, 1, 2} and run[-1][0].epoch >= 1
    _, _, fresh = _streams("coarse", shards, shuffle=True, chunk_records=8)
    cut = 9
    resumed = list(itertools.islice(fresh.iterate(run[cut - 1][0]), len(run) - cut))
    for (p, a), (q, b) in zip(run[cut:], resumed, strict=True):
        assert p == q
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    with pytest.raises(ValueError, match="past the"):
        next(fresh.iterate(DataPosition(0, 99, 0)))
    streams.close()
    fresh.close()


def test_the_next_chunk_is_built_only_once_a_second_batch_is_asked_for(shards):
    _, _, streams = _streams("coarse", shards, shuffle=True, chunk_records=8)
    assert len(streams.chunk(0, 0).plan) >= 2
    streams.first_batches(2)  # validation's first batches: nothing more is built
    assert streams._next is None
    batches = streams.iterate()
    next(batches)
    assert streams._next is None  # the first step's batch: nothing competes with it
    next(batches)
    assert streams._next is not None and streams._next[0] == (0, 1)
    streams.close()


def test_a_whole_split_of_several_chunks_is_evaluated_a_chunk_at_a_time(shards):
    from bark_kedro.training.loop import StreamedSplit, eval_batches, evaluate_examples
    from bark_kedro.training.mesh import make_mesh

    model, data, streams = _streams("coarse", shards, shuffle=False, chunk_records=8)
    _, _, whole = _streams("coarse", shards, shuffle=False, chunk_records=10_000)
    assert streams.n_chunks > 1 and whole.n_chunks == 1
    lazy = eval_batches(streams, data, 1024, make_mesh(None))
    assert isinstance(lazy.batches, StreamedSplit)
    assert isinstance(eval_batches(whole, data, 1024, make_mesh(None)).batches, list)
    first = evaluate_examples(model, streams, "coarse", 1024, data_config=data)
    assert len(streams._chunks) == 1  # one chunk held at a time
    counted = streams.first_epoch_examples
    again = evaluate_examples(model, streams, "coarse", 1024, data_config=data)
    assert first == again and first["n_tokens"] > 0
    assert counted == whole.first_epoch_examples > 0  # the same examples, counted
    held = streams.first_batches(0)  # the batches the held path keeps
    for batch in held:
        batch.pop("n_positions")
        batch.pop("lengths")
    streamed = list(StreamedSplit(streams))
    assert len(streamed) == len(held) > streams.n_chunks
    for a, b in zip(streamed, held, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    streams.close()
    whole.close()


@pytest.mark.parametrize("stage", ["semantic", "coarse", "fine"])
def test_examples_laid_out_from_index_lengths_have_the_real_shapes(stage, shards):
    model = _model(stage)
    data = StageDataConfig(codebooks="random")
    records = StageRecords(stage, shards, "train")
    builder = ExampleBuilder(stage, VOCAB, data, model.config, "train", seed=4)
    for i in range(len(records)):
        real, shaped = builder.map(records[i]), builder.shapes(records, i)
        assert real.skipped == shaped.skipped
        assert [(e.length, e.group, e.inputs.shape) for e in real.examples] == [
            (e.length, e.group, e.inputs.shape) for e in shaped.examples]


def _process_streams(stage, shards, k, n=2, chunk_records=8):
    model = _model(stage)
    data = StageDataConfig(max_buckets=2)
    records = StageRecords(stage, shards, "train")
    builder = ExampleBuilder(stage, VOCAB, data, model.config, "train", seed=3)
    return StreamedBatches(records, builder, data, 1024, 2, seed=3,
                           max_length=model.config.block_size, fill_with_repeats=True,
                           chunk_records=chunk_records, process_index=k, process_count=n,
                           track_reads=True)


@pytest.mark.parametrize("stage", ["coarse", "fine"])
def test_two_processes_read_disjoint_slices_and_together_make_the_global_batches(stage,
                                                                                shards):
    one = _process_streams(stage, shards, 0, n=1)
    two = [_process_streams(stage, shards, k) for k in range(2)]
    n_batches = sum(len(one.chunk(0, c).plan) for c in range(one.n_chunks))
    whole = list(itertools.islice(one.iterate(), n_batches))
    halves = [list(itertools.islice(s.iterate(), n_batches)) for s in two]
    for (p, batch), (q0, a), (q1, b) in zip(whole, *halves, strict=True):
        assert p == q0 == q1
        assert int(a["n_positions"]) == int(b["n_positions"]) == int(batch["lengths"].sum())
        for key in ("inputs", "targets", "loss_mask", "lengths"):
            np.testing.assert_array_equal(np.concatenate([a[key], b[key]]), batch[key])
    read = [s.records_read for s in two]
    assert read[0] and read[1] and not read[0] & read[1]
    assert read[0] | read[1] == one.records_read  # one epoch: every record with examples
    with_examples = {i for i in range(len(one.records))
                     if one.builder.shapes(one.records, i).examples}
    assert one.records_read == with_examples
    for s in (one, *two):
        s.close()
    with pytest.raises(ValueError, match="divide the batch multiple"):
        _process_streams(stage, shards, 0, n=3)
