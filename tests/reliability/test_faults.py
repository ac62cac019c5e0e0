"""Faults: a full disk, runs killed at random points, runs at once. Nothing half-written is ever
visible or read, nothing is mixed, and the next run goes on."""

from __future__ import annotations

import errno
import random

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
    DEMO_SMALL,
    TOKENIZE_FAST,
    fill,
    kill_after,
    make_project,
    mlflow_runs,
    run_kedro,
    start_kedro,
    tiny_filesystem,
    versioned_table,
    visible_temporaries,
)

TOKEN_TABLES = ("text_tokens", "semantic_tokens", "codec_tokens", "rejected_tokenization")


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
    project = make_project(tmp_path / "project")
    manifests = [small_manifest(tmp_path / name, f"{name}_", n)
                 for name, n in (("first", 4), ("second", 3))]
    runs = [start_kedro(project, "--pipeline=ingest", "--params=" + ",".join([
        "ingest.source.kind=manifest", f"ingest.source.path={path}", "ingest.progress=False"]),
        log=tmp_path / f"ingest{i}.log") for i, (path, _) in enumerate(manifests)]
    assert [run.wait(timeout=600) for run in runs] == [0, 0], [
        (tmp_path / f"ingest{i}.log").read_text()[-3000:] for i in range(2)]
    by_source = {run.data.params["ingest.source.path"]: run for run in mlflow_runs(project)}
    for path, ids in manifests:
        version = by_source[str(path)].data.tags["dataset.utterances.written_version"]
        table = versioned_table(project, "data/03_primary/utterances.parquet", version)
        assert set(table["utterance_id"]) == ids  # exactly its own corpus


def latest_committed(project) -> dict:
    import json

    folder = project / "data/05_model_input/tokenize_commit.json"
    newest = sorted(folder.iterdir())[-1]
    return json.loads((newest / folder.name).read_text())


def assert_committed_set_is_whole(project) -> str:
    record = latest_committed(project)
    version = record["version"]
    for name in TOKEN_TABLES:
        versioned_table(project, f"data/05_model_input/{name}.parquet", version)  # reads whole
    return version


@pytest.mark.slow
def test_tokenize_killed_at_random_points_never_leaves_a_mixed_or_broken_latest(tmp_path):
    project = make_project(tmp_path / "project")
    done = run_kedro(project, "--pipeline=ingest", f"--params={DEMO_SMALL}")
    assert done.returncode == 0, done.stdout[-3000:]
    done = run_kedro(project, "--pipeline=tokenize", f"--params={TOKENIZE_FAST}")
    assert done.returncode == 0, done.stdout[-3000:]
    first = assert_committed_set_is_whole(project)
    rng = random.Random(17)
    killed = 0
    for attempt in range(3):
        process = start_kedro(project, "--pipeline=tokenize", f"--params={TOKENIZE_FAST}",
                              log=tmp_path / f"killed{attempt}.log")
        killed += kill_after(process, rng.uniform(8.0, 40.0))
        assert assert_committed_set_is_whole(project) == first  # the killed run never commits
    # The next start cleans up and goes on; a pipeline reading the tokens gets the whole set.
    done = run_kedro(project, "--pipeline=tokenize", f"--params={TOKENIZE_FAST}")
    assert done.returncode == 0, done.stdout[-3000:]
    assert visible_temporaries(project) == []
    assert assert_committed_set_is_whole(project) > first
    statuses = [run.info.status for run in mlflow_runs(project)]
    assert statuses.count("KILLED") == killed and statuses.count("RUNNING") == 0
    assert killed >= 1
