"""Token tables written shard by shard as they are tokenized: the same tables, rejects and
figures as the whole-corpus functions; a killed tokenization resumes from its complete shards."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro.io import DatasetError, Version

from bark_kedro.datasets.sharded import ShardedTableDataset
from bark_kedro.tokenizers import corpus
from bark_kedro.tokenizers.config import CodecConfig, TextConfig
from bark_kedro.tokenizers.shards import ShardedTable
from bark_kedro.tokenizers.stream import (
    TokenStream,
    combine_stats,
    stage_results,
    token_stream,
    tokenizer_digest,
)
from bark_kedro.tokenizers.text import text_tokenizer_from_dict
from tests.helpers.signals import write_corpus_with_rejects
from tests.helpers.tables import assert_same_table

V1, V2, V3 = "2026-01-01T00.00.00.000Z", "2026-01-02T00.00.00.000Z", "2026-01-03T00.00.00.000Z"


@pytest.fixture(scope="module")
def utterances(tmp_path_factory) -> pd.DataFrame:
    return write_corpus_with_rejects(tmp_path_factory.mktemp("corpus"))


def _save(path: Path, version: str, data, rows_per_shard: int) -> ShardedTable:
    dataset = ShardedTableDataset(str(path), rows_per_shard=rows_per_shard,
                                  version=Version(None, version))
    dataset.save(data)
    return ShardedTableDataset(str(path), version=Version(version, None)).load()


@pytest.mark.parametrize("rows_per_shard", [10_000, 2, 1])
def test_streamed_tables_rejects_and_figures_equal_the_whole_corpus_functions(
        tmp_path, utterances, rows_per_shard):
    text = corpus.fit_text_tokenizer(utterances, TextConfig())
    codec = corpus.build_codec(utterances, CodecConfig(weights="random", kmeans_iters=2,
                                                       max_init_frames=512))
    for stage, tokenizer, options in (("text", text, {}),
                                      ("codec", codec, {"group_seconds": 1.5})):
        want, want_rejects, want_stats = getattr(corpus, f"tokenize_{stage}")(
            utterances, tokenizer, **options, progress=False)
        stream = token_stream(stage, utterances, tokenizer, progress=False, **options)
        table = _save(tmp_path / stage, V1, stream, rows_per_shard)
        n_shards = len(utterances) - len(want_rejects) if rows_per_shard == 1 else None
        assert table.n_shards == (1 if rows_per_shard > len(utterances) else
                                  n_shards or int(np.ceil(len(utterances) / rows_per_shard)))
        assert len(table.work_notes) == int(np.ceil(len(utterances) / rows_per_shard))
        assert_same_table(table.to_pandas(), want)
        assert_same_table(pd.read_parquet(table.folder), want)
        rejects, stats = stage_results(table)
        assert_same_table(rejects, want_rejects)
        assert len(rejects) == 1
        assert list(stats) == list(want_stats)
        for name in ("audio_seconds", "n_tokenized", "n_rejected", "n_tokens",
                     "unknown_fraction", "vocab_size"):
            if name in want_stats:
                assert stats[name] == pytest.approx(want_stats[name]), name
        in_memory, memory_rejects, _ = stream.to_pandas(rows_per_shard)
        assert_same_table(in_memory, want)
        assert_same_table(memory_rejects, want_rejects)
        assert not list(tmp_path.glob(f"{stage}/*/.*"))  # no partial folder left


def test_a_corpus_all_rejected_fails_naming_the_stage_and_shows_no_table(tmp_path, utterances):
    text = corpus.fit_text_tokenizer(utterances, TextConfig())
    silent = utterances.assign(text="")
    with pytest.raises(DatasetError, match="no utterance could be tokenized by the text stage"):
        _save(tmp_path / "text", V1, token_stream("text", silent, text, progress=False), 2)
    assert not (tmp_path / "text" / V1 / "text").exists()


def test_work_keys_follow_the_tokenizer_the_options_and_the_utterances(utterances):
    text = corpus.fit_text_tokenizer(utterances, TextConfig())
    other = corpus.fit_text_tokenizer(utterances, TextConfig(lowercase=True))
    assert tokenizer_digest(text) == tokenizer_digest(text_tokenizer_from_dict(text.to_dict()))
    assert tokenizer_digest(text) != tokenizer_digest(other)

    def keys(stream: TokenStream) -> list[str]:
        return [work.key for work in stream.shard_work(2)]

    base = keys(token_stream("text", utterances, text))
    assert len(set(base)) == 3
    assert keys(token_stream("text", utterances, text)) == base
    assert keys(token_stream("text", utterances, other)) != base
    changed = utterances.copy()
    changed.loc[4, "text"] = "another text"
    assert keys(token_stream("text", changed, text))[:2] == base[:2]
    assert keys(token_stream("text", changed, text))[2] != base[2]
    with pytest.raises(ValueError, match="engine='spark'"):
        token_stream("text", utterances, text, engine="spark")


def test_figures_of_groups_combine_into_the_stage_figures():
    parts = [{"audio_seconds": 3.0, "wall_seconds": 1.0, "audio_s_per_s": 3.0,
              "n_tokens": 10.0, "unknown_fraction": 0.1, "vocab_size": 40.0},
             {"audio_seconds": 1.0, "wall_seconds": 1.0, "audio_s_per_s": 1.0,
              "n_tokens": 30.0, "unknown_fraction": 0.0, "vocab_size": 40.0}]
    assert combine_stats(parts) == {"audio_seconds": 4.0, "wall_seconds": 2.0,
                                    "audio_s_per_s": 2.0, "n_tokens": 40.0,
                                    "unknown_fraction": pytest.approx(0.025),
                                    "vocab_size": 40.0}


# ---- a tokenization killed with SIGKILL, then run again --------------------------------------
class _Tokenize:
    """The text stage, counting its groups in ``calls``; after ``stop_after`` groups it sets
    ``flag`` and waits to be killed."""

    def __init__(self, tokenizer, flag=None, stop_after: int | None = None, calls=None):
        self.tokenizer, self.flag, self.stop_after, self.calls = tokenizer, flag, stop_after, calls

    def __call__(self, group: pd.DataFrame):
        if self.stop_after is not None and self.calls.value == self.stop_after:
            self.flag.set()
            time.sleep(120)
        self.calls.value += 1
        return corpus.tokenize_text(group, self.tokenizer, progress=False, require_some=False)


def _stream(utterances, text_dict, **options) -> TokenStream:
    tokenizer = text_tokenizer_from_dict(text_dict)
    return TokenStream("text", utterances, _Tokenize(tokenizer, **options),
                       {"tokenizer": tokenizer_digest(tokenizer)})


def _tokenize_until_killed(path, utterances, text_dict, flag, calls):
    _save(Path(path), V1, _stream(utterances, text_dict, flag=flag, stop_after=2, calls=calls), 1)


@pytest.mark.slow
def test_killed_tokenization_leaves_no_shard_and_a_rerun_skips_the_complete_ones(
        tmp_path, utterances):
    text = corpus.fit_text_tokenizer(utterances, TextConfig()).to_dict()
    path = tmp_path / "text_tokens.parquet"
    ctx = multiprocessing.get_context("spawn")  # no fork of a process running JAX threads
    flag, calls = ctx.Event(), ctx.Value("i", 0)
    worker = ctx.Process(target=_tokenize_until_killed,
                         args=(str(path), utterances, text, flag, calls))
    worker.start()
    assert flag.wait(60)
    os.kill(worker.pid, signal.SIGKILL)
    worker.join()
    assert calls.value == 2  # two groups (one utterance each) tokenized, then killed
    visible = [p for p in path.rglob("*") if not any(part.startswith(".")
                                                     for part in p.relative_to(path).parts)]
    assert visible == [path / V1]  # the version folder only: no table, no shard
    partial = path / V1 / ".text_tokens.parquet.partial"
    assert sorted(p.name for p in partial.glob("shard-*")) == [
        "shard-00000.parquet", "shard-00001.parquet"]

    counter = ctx.Value("i", 0)
    rerun = _save(path, V2, _stream(utterances, text, calls=counter), 1)
    assert counter.value == len(utterances) - 2  # the two complete shards were not redone
    fresh = _save(tmp_path / "fresh", V3, _stream(utterances, text, calls=ctx.Value("i", 0)), 1)
    assert_same_table(rerun.to_pandas(), fresh.to_pandas())
    assert rerun.index.equals(fresh.index)
    assert_same_table(stage_results(rerun)[0], stage_results(fresh)[0])
    assert not partial.exists() and not (path / V1).exists()  # the killed run's work moved on
    assert sorted(p.name for p in path.iterdir()) == [V2]


def test_a_partial_folder_whose_writer_still_runs_is_left_alone(tmp_path, utterances):
    import json
    import subprocess
    import sys

    text = corpus.fit_text_tokenizer(utterances, TextConfig()).to_dict()
    path = tmp_path / "text_tokens.parquet"
    first = _save(path, V1, _stream(utterances, text, calls=multiprocessing.Value("i", 0)), 2)
    busy = path / V2 / ".text_tokens.parquet.partial"  # as a running writer's folder looks
    busy.mkdir(parents=True)
    for i, note in enumerate(first.work_notes):
        (busy / f"_work-{i:05d}.json").write_text(json.dumps(note))
    for i in range(first.n_shards):
        os.link(first.folder / f"shard-{i:05d}.parquet", busy / f"shard-{i:05d}.parquet")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (busy / "_writer.json").write_text(json.dumps({"host": os.uname().nodename,
                                                       "pid": sleeper.pid}))
        calls = multiprocessing.Value("i", 0)
        again = _save(path, V3, _stream(utterances, text, calls=calls), 2)
        assert calls.value == 3  # every group tokenized here: nothing taken from a live writer
        assert busy.is_dir() and len(list(busy.glob("shard-*"))) == first.n_shards
        assert_same_table(again.to_pandas(), first.to_pandas())
    finally:
        sleeper.kill()
        sleeper.wait()
    calls = multiprocessing.Value("i", 0)  # its writer gone, the next run takes its shards
    last = _save(path, "2026-01-04T00.00.00.000Z", _stream(utterances, text, calls=calls), 2)
    assert calls.value == 0 and not (path / V2).exists()
    assert_same_table(last.to_pandas(), first.to_pandas())
    with pytest.raises(TypeError, match="ShardedTableDataset"):
        stage_results(first.to_pandas())
