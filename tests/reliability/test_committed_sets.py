"""Later pipelines read the newest complete tokenize set, or fail at start saying how to fix it."""

import pandas as pd
import pytest
from kedro.io import DataCatalog, Version

from bark_kedro.integrity_hooks import (
    COMMIT_RECORD,
    InconsistentInputsError,
    resolve_committed_inputs,
)

MEMBERS = ["codec_tokens", "semantic_tokens"]
PARQUET = "bark_kedro.datasets.atomic.ParquetDataset"


def catalog(root, load_versions=None):
    config = {name: {"type": PARQUET, "filepath": str(root / f"{name}.parquet"), "versioned": True}
              for name in [*MEMBERS, "utterances"]}
    config[COMMIT_RECORD] = {"type": "bark_kedro.datasets.atomic.JSONDataset",
                             "filepath": str(root / "commit.json"), "versioned": True}
    return DataCatalog.from_config(config, load_versions=load_versions or {})


def write(root, name, version, value):
    dataset = catalog(root).get(name)
    dataset._version = Version(None, version)
    dataset.save(pd.DataFrame({"v": [value]}) if name != COMMIT_RECORD else value)


def tokenize_run(root, version, utterances, commit=True, names=MEMBERS):
    for name in names:
        write(root, name, version, version)
    if commit:
        write(root, COMMIT_RECORD, version, {"version": version,
                                             "outputs": dict.fromkeys(MEMBERS, version),
                                             "inputs": {"utterances": utterances}})


def read(cat, pinned=None, inputs=(*MEMBERS, "utterances")):
    resolve_committed_inputs(cat, MEMBERS, set(inputs), pinned or {})
    return {name: cat.load(name)["v"].iloc[0] for name in MEMBERS}


def test_a_killed_runs_outputs_are_never_latest(tmp_path):
    write(tmp_path, "utterances", "u1", "u1")
    tokenize_run(tmp_path, "t1", "u1")
    tokenize_run(tmp_path, "t2", "u1", commit=False, names=["codec_tokens"])  # killed midway
    assert read(catalog(tmp_path)) == {"codec_tokens": "t1", "semantic_tokens": "t1"}
    tokenize_run(tmp_path, "t3", "u1")
    assert read(catalog(tmp_path)) == {"codec_tokens": "t3", "semantic_tokens": "t3"}


def test_mixed_pins_fail_naming_the_datasets_and_the_fix(tmp_path):
    write(tmp_path, "utterances", "u1", "u1")
    tokenize_run(tmp_path, "t1", "u1")
    tokenize_run(tmp_path, "t2", "u1")
    with pytest.raises(InconsistentInputsError,
                       match=r"codec_tokens:t1.*at t2.*--load-versions=codec_tokens:t1,"
                             r"semantic_tokens:t1"):
        read(catalog(tmp_path), {"codec_tokens": "t1"})
    assert read(catalog(tmp_path), {"codec_tokens": "t1", "semantic_tokens": "t1"}) == {
        "codec_tokens": "t1", "semantic_tokens": "t1"}  # one older set, pinned whole


def test_new_utterances_without_new_tokens_fail_at_start(tmp_path):
    write(tmp_path, "utterances", "u1", "u1")
    tokenize_run(tmp_path, "t1", "u1")
    write(tmp_path, "utterances", "u2", "u2")  # an unrelated ingest
    with pytest.raises(InconsistentInputsError, match=r"utterances at u2 .*\(u1\).*"
                                                      r"--load-versions=utterances:u1"):
        read(catalog(tmp_path))
    read(catalog(tmp_path), {"utterances": "u1"})
    read(catalog(tmp_path), inputs=MEMBERS)  # a pipeline that reads only tokens is fine


def test_without_any_commit_record_the_latest_versions_must_agree(tmp_path):
    tokenize_run(tmp_path, "t1", "u1", commit=False)
    tokenize_run(tmp_path, "t2", "u1", commit=False, names=["codec_tokens"])
    with pytest.raises(InconsistentInputsError,
                       match=r"codec_tokens at t2, semantic_tokens at t1 .*"
                             r"--load-versions=codec_tokens:t1,semantic_tokens:t1"):
        read(catalog(tmp_path))
