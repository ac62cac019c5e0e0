"""Faults: a full disk, runs killed at random points, runs at once. Nothing half-written is ever
visible or read, nothing is mixed, and the next run goes on."""

from __future__ import annotations

import errno

import numpy as np
import pandas as pd
import pytest
from kedro.io import DatasetError, Version

from bark_kedro.audio.ingest import IngestConfig, ingest_utterances
from bark_kedro.audio.io import write_audio_atomic
from bark_kedro.audio.sources import read_manifest
from bark_kedro.datasets.atomic import ParquetDataset
from tests.audio.bad_corpus import make_bad_input_corpus
from tests.reliability.faults import (
    concurrent_ingests,
    fill,
    tiny_filesystem,
    tokenize_kills,
    training_kill,
)


@pytest.fixture
def full_disk(tmp_path):
    try:
        with tiny_filesystem(tmp_path / "tiny", "256k") as mount:
            yield mount
    except OSError as err:
        pytest.skip(f"no small file system to fill here: {err}")


def test_a_full_disk_names_file_and_device_and_leaves_nothing(full_disk, tmp_path):
    manifest, _ = make_bad_input_corpus(tmp_path / "corpus")
    sources = read_manifest(manifest)
    fill(full_disk)
    with pytest.raises(OSError, match=r"no space left on device \d+:\d+ \(mounted at .*tiny\)"
                                      r".*\.wav") as info:
        ingest_utterances(sources, full_disk / "out", IngestConfig(), progress=False)
    assert info.value.errno == errno.ENOSPC
    with pytest.raises(OSError, match="a.wav"):
        write_audio_atomic(full_disk / "a.wav", np.zeros(48_000, np.float32), 24_000)
    frame = pd.DataFrame({"ids": [list(range(1000))] * 100})
    dataset = ParquetDataset(filepath=str(full_disk / "t.parquet"), version=Version(None, "v1"))
    with pytest.raises(DatasetError, match=r"(?s)no space left on device.*t\.parquet"):
        dataset.save(frame)
    assert not (full_disk / "t.parquet" / "v1").exists()
    leftovers = [p for p in full_disk.rglob("*") if p.is_file() and p.name != "filler"]
    assert leftovers == []  # no half-written WAV, Parquet or temporary file


def small_manifest(folder, prefix: str, count: int):
    manifest, expected = make_bad_input_corpus(folder)
    frame = pd.read_csv(manifest)
    keep = [uid for uid, code in expected.items() if code is None][:count]
    frame = frame[frame["id"].isin(keep)].assign(id=lambda f: prefix + f["id"])
    frame.to_csv(manifest, index=False)
    return manifest, set(frame["id"])


@pytest.mark.slow
def test_two_ingests_at_once_never_mix(tmp_path):
    corpora = [small_manifest(tmp_path / name, f"{name}_", n)
               for name, n in (("first", 4), ("second", 3))]
    result = concurrent_ingests(tmp_path, corpora)
    assert result["exit_codes"] == [0, 0], result["logs"]
    assert result["own_corpus"] == [True, True]  # each utterances version holds its own rows


@pytest.mark.slow
def test_kills_of_tokenize_and_training_never_leave_a_broken_or_mixed_latest(tmp_path):
    result = tokenize_kills(tmp_path, kills=2)
    assert result["killed"] >= 1
    assert result["whole_after_kill"] == result["unchanged_after_kill"] == result["killed"]
    assert result["next_run_ok"], result["log"]
    assert result["new_commit"] and result["whole_at_end"]
    assert result["temporaries_left"] == 0
    # a run killed before MLflow's run started has nothing to mark; none is left RUNNING
    assert result["marked_killed"] <= result["killed"] and result["left_running"] == 0

    training = training_kill(result["project"], tmp_path)
    assert training["next_run_ok"], training["log"]
    assert training["every_version_loads"] and training["temporaries_left"] == 0
