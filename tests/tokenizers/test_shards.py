"""Sharded token tables: write/read, versions through the catalog entry, crashes, resumes."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import numpy as np
import pandas as pd
import pytest
from kedro.io import DatasetError, Version

from bark_kedro.datasets.sharded import ShardedTableDataset
from bark_kedro.models import BarkVocab
from bark_kedro.tokenizers.shards import ShardedTable, ShardWriter, as_frame, write_shards
from tests.training.synthetic import token_tables

VOCAB = BarkVocab(text_vocab_size=20, semantic_vocab_size=16, codebook_size=8,
                  n_coarse_codebooks=2, n_fine_codebooks=4)


@pytest.fixture(scope="module")
def tables():
    return token_tables(VOCAB, n_utterances=23, seed=3)


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b)
    for name in a.columns:
        for x, y in zip(a[name], b[name], strict=True):
            if isinstance(x, np.ndarray):
                assert x.dtype == np.asarray(y).dtype and np.array_equal(x, y), name
            else:
                assert x == y, name


def test_shards_round_trip_with_index(tmp_path, tables):
    _, _, codec = tables
    table = write_shards(codec, tmp_path / "codec", rows_per_shard=5, row_group_rows=2)
    assert table.n_shards == 5 and len(table) == 23
    assert [s["rows"] for s in table.manifest["shards"]] == [5, 5, 5, 5, 3]
    assert sum(s["frames"] for s in table.manifest["shards"]) == int(codec["n_frames"].sum())
    index = table.index
    assert index["utterance_id"].tolist() == codec["utterance_id"].tolist()
    assert index["length"].tolist() == codec["n_frames"].tolist()
    assert (index["split"] == "validation").sum() == sum(
        s["splits"].get("validation", 0) for s in table.manifest["shards"])
    _same(table.to_pandas(), codec)
    _same(pd.read_parquet(tmp_path / "codec"), codec)  # pyarrow skips the index files
    _same(table.read_shard(2), codec.iloc[10:15].reset_index(drop=True))
    for i in (0, 7, 22, 3):  # random access by row group
        shard, row = index.iloc[i][["shard", "row"]]
        record = table.record(int(shard), int(row))
        assert record["utterance_id"] == codec["utterance_id"][i]
        assert np.array_equal(record["codes"], codec["codes"][i])
        expected = table.read_shard(int(shard)).to_dict("records")[int(row)]
        assert record.keys() == expected.keys()
        for name, value in expected.items():  # as pandas gives the row: types, dtypes
            if isinstance(value, np.ndarray):
                assert record[name].dtype == value.dtype and record[name].flags.writeable
                assert np.array_equal(record[name], value), name
            else:
                assert type(record[name]) is type(value) and record[name] == value, name
    assert [r["utterance_id"] for r in table.iter_records(["utterance_id"])] == index[
        "utterance_id"].tolist()


def test_small_table_is_one_shard_and_lengths_of_id_columns(tmp_path, tables):
    text, semantic, _ = tables
    table = write_shards(semantic, tmp_path / "semantic")
    assert table.n_shards == 1
    assert table.index["length"].tolist() == [len(x) for x in semantic["semantic_ids"]]
    assert write_shards(text, tmp_path / "text").index["length"].tolist() == [
        len(x) for x in text["text_ids"]]
    assert as_frame(table).equals(table.to_pandas()) and as_frame(None) is None


def test_writer_takes_batches_of_any_size(tmp_path, tables):
    _, _, codec = tables
    batches = [codec.iloc[:3], codec.iloc[3:4], codec.iloc[4:17], codec.iloc[17:]]
    table = ShardWriter(tmp_path / "codec", rows_per_shard=4).write(iter(batches))
    assert [s["rows"] for s in table.manifest["shards"]] == [4, 4, 4, 4, 4, 3]
    _same(table.to_pandas(), codec)


def test_bad_batches_and_existing_tables_are_refused(tmp_path, tables):
    text, semantic, _ = tables
    with pytest.raises(ValueError, match="has columns"):
        ShardWriter(tmp_path / "t").write([text.iloc[:2], semantic.iloc[2:]])
    with pytest.raises(ValueError, match="repeats utterance ids"):
        ShardWriter(tmp_path / "u", rows_per_shard=3).write([text.iloc[:4], text.iloc[:4]])
    assert not (tmp_path / "t").exists() and not (tmp_path / "u").exists()
    write_shards(text, tmp_path / "v")
    with pytest.raises(FileExistsError, match="never overwritten"):
        write_shards(text, tmp_path / "v")


def test_table_is_picklable_without_its_caches(tmp_path, tables):
    import pickle

    table = write_shards(tables[2], tmp_path / "codec", rows_per_shard=10)
    table.record(1, 2)
    copy = pickle.loads(pickle.dumps(table))
    assert copy.folder == table.folder and not copy._groups
    assert copy.record(1, 2)["utterance_id"] == table.record(1, 2)["utterance_id"]


def _slow_batches(codec: pd.DataFrame, done_flag):
    for i in range(len(codec)):
        yield codec.iloc[i:i + 1]
        if i == 11:  # shards 0-2 (4 rows each) are complete: signal and wait to be killed
            done_flag.set()
            time.sleep(60)


def _write_until_killed(folder, codec, done_flag):
    ShardWriter(folder, rows_per_shard=4).write(_slow_batches(codec, done_flag))


@pytest.mark.slow
def test_killed_write_leaves_no_table_and_a_rerun_skips_complete_shards(tmp_path, tables):
    codec = tables[2]
    folder = tmp_path / "v1" / "codec_tokens.parquet"
    ctx = multiprocessing.get_context("spawn")  # no fork of a process running JAX threads
    flag = ctx.Event()
    writer = ctx.Process(target=_write_until_killed, args=(folder, codec, flag))
    writer.start()
    assert flag.wait(30)
    os.kill(writer.pid, signal.SIGKILL)
    writer.join()
    assert not folder.exists()  # nothing visible: no table, no shard
    with pytest.raises(DatasetError):
        ShardedTableDataset(str(tmp_path / "codec"), version=Version(None, None)).load()
    partial = folder.with_name(f".{folder.name}.partial")
    assert sorted(p.name for p in partial.iterdir() if not p.name.startswith(".")) == [
        "shard-00000.parquet", "shard-00001.parquet", "shard-00002.parquet"]
    rerun = ShardWriter(folder, rows_per_shard=4)
    assert rerun.complete_rows() == 12
    table = rerun.write((codec.iloc[i:i + 5] for i in range(12, len(codec), 5)), first_row=12)
    assert rerun.skipped_shards == 0 and table.n_shards == 6
    _same(table.to_pandas(), codec)
    again = ShardWriter(tmp_path / "v2" / "c", rows_per_shard=4)
    again.partial.mkdir(parents=True)
    os.link(folder / "shard-00000.parquet", again.partial / "shard-00000.parquet")
    again.write([codec])
    assert again.skipped_shards == 1  # the complete shard with the same rows is kept


def test_dataset_versions_load_latest_and_pinned(tmp_path, tables):
    text = tables[0]
    path = str(tmp_path / "text_tokens.parquet")
    ShardedTableDataset(path, rows_per_shard=6, version=Version(None, "2026-01-01T00.00.00.000Z")
                        ).save(text)
    ShardedTableDataset(path, rows_per_shard=6, version=Version(None, "2026-01-02T00.00.00.000Z")
                        ).save(iter([text.iloc[:10]]))
    latest = ShardedTableDataset(path, version=Version(None, None)).load()
    assert isinstance(latest, ShardedTable) and len(latest) == 10 and latest.n_shards == 2
    pinned = ShardedTableDataset(path, version=Version("2026-01-01T00.00.00.000Z", None)).load()
    assert len(pinned) == 23 and pinned.n_shards == 4
    with pytest.raises(DatasetError, match="must not exist"):
        ShardedTableDataset(path, version=Version(None, "2026-01-01T00.00.00.000Z")).save(text)
    assert len(ShardedTable(pinned.folder)) == 23  # the old version is untouched


def test_records_read_from_many_threads_at_once_are_the_right_rows(tmp_path, tables):
    from concurrent.futures import ThreadPoolExecutor

    codec = tables[2]
    table = write_shards(codec, tmp_path / "codec", rows_per_shard=6, row_group_rows=2)
    table.cache_row_groups, table.max_open_shards = 2, 1  # evictions while others read
    where = table.index[["shard", "row"]].to_numpy()
    order = np.random.default_rng(0).integers(0, len(codec), 400)
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda i: table.record(*map(int, where[i]))["utterance_id"], order))
    assert got == codec["utterance_id"].to_numpy()[order].tolist()


def test_record_reads_keep_a_bounded_number_of_shard_files_open(tmp_path, tables):
    codec = tables[2]
    table = write_shards(codec, tmp_path / "codec", rows_per_shard=3, row_group_rows=1)
    table = ShardedTable(table.folder, cache_row_groups=1, max_open_shards=2)
    assert table.n_shards > 2
    where = table.index[["shard", "row"]].to_numpy()
    got = [table.record(*map(int, where[i]))["utterance_id"] for i in range(len(codec))]
    assert got == codec["utterance_id"].tolist()
    assert list(table._files) == [table.n_shards - 2, table.n_shards - 1]  # the last two used
    with pytest.raises(ValueError, match="max_open_shards"):
        ShardedTable(table.folder, max_open_shards=0)
