"""The ingest pipeline end to end through a Kedro session, with its MLflow run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bark_kedro.pipelines.tracking import dataset_versions
from tests.audio.bad_corpus import make_bad_input_corpus
from tests.helpers.kedro_runs import latest_run, run_pipeline


def read_versioned(path: Path) -> pd.DataFrame:
    versions = sorted(path.iterdir())
    return pd.read_parquet(versions[-1] / path.name)


@pytest.mark.slow
def test_ingest_sets_every_utterance_in_exactly_one_table(project_copy: Path) -> None:
    manifest, expected = make_bad_input_corpus(project_copy / "bad_corpus")
    run_pipeline(
        project_copy,
        "ingest",
        {"ingest.source.kind": "manifest", "ingest.source.path": str(manifest),
         "ingest.progress": False},
    )
    utterances = read_versioned(project_copy / "data/03_primary/utterances.parquet")
    rejected = read_versioned(project_copy / "data/03_primary/rejected_utterances.parquet")

    assert set(utterances.utterance_id) | set(rejected.utterance_id) == set(expected)
    assert not set(utterances.utterance_id) & set(rejected.utterance_id)
    valid = {uid for uid, reason in expected.items() if reason is None}
    assert set(utterances.utterance_id) == valid
    reasons = dict(zip(rejected.utterance_id, rejected.reason, strict=True))
    for uid, code in expected.items():
        if code is not None:
            assert reasons[uid].startswith(code), (uid, reasons[uid])
    for path in utterances.audio_24k_path:
        assert (project_copy / path).is_file()

    run = latest_run(project_copy)
    assert run.info.status == "FINISHED"
    assert run.data.tags["pipeline"] == "ingest"
    assert run.data.params["ingest.processing.max_duration_s"] == "20.0"
    assert run.data.metrics["utterances/n_utterances"] == len(valid)
    assert run.data.metrics["utterances/n_rejected"] == len(expected) - len(valid)
    for name in ("utterances", "rejected_utterances"):
        version = dataset_versions(run, "written")[name]
        assert (project_copy / f"data/03_primary/{name}.parquet" / version).is_dir()


@pytest.mark.slow
def test_ingest_of_the_demo_corpus(project_copy: Path) -> None:
    run_pipeline(
        project_copy,
        "ingest",
        {"ingest.demo_corpus.num_speakers": 2, "ingest.demo_corpus.utterances_per_speaker": 3,
         "ingest.progress": False},
    )
    utterances = read_versioned(project_copy / "data/03_primary/utterances.parquet")
    assert len(utterances) == 6
    assert utterances.speaker.nunique() == 2
    assert (project_copy / "data/01_raw/demo/manifest.csv").is_file()


@pytest.mark.slow
def test_bad_parameter_fails_at_start_naming_its_key(project_copy: Path) -> None:
    with pytest.raises(Exception, match=r"processing\.max_duration_s\s+Input should be a valid "
                                        r"number"):
        run_pipeline(project_copy, "ingest", {"ingest.processing.max_duration_s": "long"})
    assert not (project_copy / "data/01_raw/demo").exists()


@pytest.mark.slow
def test_run_with_nothing_valid_is_marked_failed(project_copy: Path) -> None:
    manifest = project_copy / "empty.csv"
    manifest.write_text("path,text\nmissing.wav,hello\n")
    with pytest.raises(ValueError, match="no valid utterances left"):
        run_pipeline(
            project_copy, "ingest",
            {"ingest.source.kind": "manifest", "ingest.source.path": str(manifest),
             "ingest.progress": False},
        )
    assert latest_run(project_copy).info.status == "FAILED"
