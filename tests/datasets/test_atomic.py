"""Every dataset the project writes appears whole or not at all."""

import os
import subprocess
import sys

import pandas as pd
import pytest
from kedro.io import DatasetError, Version

from bark_kedro.atomic_files import remove_orphans, temporary_sibling
from bark_kedro.datasets.artifacts import CodecModelDataset
from bark_kedro.datasets.atomic import JSONDataset, ParquetDataset
from bark_kedro.tokenizers.codec import CodecTokenizer
from tests.helpers.signals import tone


class Unwritable:
    """A 'frame' whose Parquet writer fails halfway, like a full disk."""

    def to_parquet(self, path, **kwargs):
        with open(path, "wb") as f:
            f.write(b"PAR1 half a file")
        raise OSError(28, "No space left on device")


def test_a_failed_parquet_save_leaves_no_version(tmp_path):
    path = tmp_path / "t.parquet"
    ParquetDataset(filepath=str(path), version=Version(None, "v1")).save(pd.DataFrame({"a": [1, 2]}))
    with pytest.raises(DatasetError, match=r"(?s)no space left on device.*t\.parquet"):
        ParquetDataset(filepath=str(path), version=Version(None, "v2")).save(Unwritable())
    assert sorted(p.name for p in path.iterdir()) == ["v1"]  # v2 left nothing, not even a temp
    latest = ParquetDataset(filepath=str(path), version=Version(None, None))
    assert latest.resolve_load_version() == "v1" and latest.load()["a"].tolist() == [1, 2]


def test_json_save_is_atomic_and_round_trips(tmp_path):
    dataset = JSONDataset(filepath=str(tmp_path / "r.json"))
    dataset.save({"a": [1, 2]})
    assert dataset.load() == {"a": [1, 2]}
    with pytest.raises(DatasetError):
        dataset.save({"bad": object()})  # not JSON: the old file stays whole
    assert dataset.load() == {"a": [1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_a_killed_writer_leaves_an_orphan_that_the_next_start_removes(tmp_path):
    target = tmp_path / "v1" / "t.parquet"
    target.parent.mkdir()
    code = (f"import os, pathlib; p = pathlib.Path({str(target)!r});"
            "from bark_kedro.atomic_files import temporary_sibling;"
            "t = temporary_sibling(p); t.write_bytes(b'half'); os._exit(9)")
    subprocess.run([sys.executable, "-c", code], check=False, env=os.environ)
    orphans = list(target.parent.iterdir())
    assert len(orphans) == 1 and orphans[0].name.endswith(".tmp")
    mine = temporary_sibling(target)  # a writer still at work (this process) keeps its file
    mine.write_bytes(b"in progress")
    assert remove_orphans(tmp_path) == orphans
    assert list(target.parent.iterdir()) == [mine]


@pytest.mark.slow
def test_an_identical_codec_model_is_stored_once(tmp_path):
    codec = CodecTokenizer.random([tone(1.0, 24_000, seed=s) for s in range(2)], kmeans_iters=1)
    path = str(tmp_path / "codec.pt")
    for version in ("v1", "v2"):
        CodecModelDataset(path, Version(None, version)).save(codec)
    blobs = list((tmp_path / "codec.pt.blobs").iterdir())
    assert len(blobs) == 1
    files = [tmp_path / "codec.pt" / v / "codec.pt" for v in ("v1", "v2")]
    assert all(f.stat().st_ino == blobs[0].stat().st_ino for f in files)  # hard links, one copy
    again = CodecModelDataset(path, Version(None, None)).load()
    assert again.weights_source == "random"
    other = CodecTokenizer.random([tone(1.0, 24_000, seed=s) for s in (5, 6)], seed=3,
                                  kmeans_iters=1)
    CodecModelDataset(path, Version(None, "v3")).save(other)
    assert len(list((tmp_path / "codec.pt.blobs").iterdir())) == 2
