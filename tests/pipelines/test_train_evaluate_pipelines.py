"""Training, evaluate and synthesize pipelines end to end through Kedro sessions.

A tiny demo corpus goes through ingest and tokenize, then each stage trains for a few
steps through the one training template, then evaluate and synthesize run on the trained
models. The MLflow run of each step is checked: per-step metrics, device tags, model
artifacts, the report.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
import soundfile as sf

from bark_kedro.datasets.model_directory import ModelDirectoryDataset
from bark_kedro.models.layout import STAGES
from bark_kedro.pipelines.tracking import dataset_versions
from bark_kedro.pipelines.train import create_stage_pipeline
from bark_kedro.pipelines.train.params import TrainStageParams
from tests.helpers.kedro_runs import FAST_TOKENIZE as FAST
from tests.helpers.kedro_runs import ingest_demo_corpus as ingest
from tests.helpers.kedro_runs import latest_run, run_pipeline

TRAIN = {
    key: value
    for stage in STAGES
    for key, value in {
        f"train_{stage}.train.steps": 4,
        f"train_{stage}.train.eval_every": 2,
        f"train_{stage}.train.checkpoint_every": 2,
        f"train_{stage}.train.tokens_per_batch": 1024,
        f"train_{stage}.train.progress": False,
    }.items()
}
EVALUATE = {"evaluate.n_utterances": 2}


def _metric_history(run: mlflow.entities.Run, project: Path, name: str) -> list:
    client = mlflow.MlflowClient(f"sqlite:///{project}/data/09_tracking/mlflow.db")
    return client.get_metric_history(run.info.run_id, name)


@pytest.mark.slow
def test_train_evaluate_synthesize(project_copy: Path) -> None:
    ingest(project_copy, utterances_per_speaker=8, output_dir="data/02_intermediate")
    run_pipeline(project_copy, "tokenize", FAST)

    for stage in STAGES:
        run_pipeline(project_copy, f"train_{stage}", TRAIN)
        run = latest_run(project_copy)
        assert run.info.status == "FINISHED"
        assert run.data.tags["pipeline"] == f"train_{stage}"
        assert run.data.tags["device.platform"] == "cpu"
        steps = [m.step for m in _metric_history(run, project_copy, f"{stage}/train_loss")]
        assert steps == [1, 2, 3, 4]
        assert len(_metric_history(run, project_copy, f"{stage}/val_loss")) == 3  # 0, 2, 4
        for table in ("text_tokens", "semantic_tokens", "codec_tokens"):
            assert table in dataset_versions(run, "read")
        summary = json.loads((project_copy / f"data/08_reporting/train_{stage}_summary.json")
                             .read_text())
        assert summary["steps"] == 4 and summary["resumed_from_step"] is None
        model_root = project_copy / f"data/06_models/{stage}_model"
        assert len(list(model_root.iterdir())) == 1
        versions = mlflow.MlflowClient(
            f"sqlite:///{project_copy}/data/09_tracking/mlflow.db").search_model_versions(
            f"name='bark_kedro.{stage}_model'")
        assert [v.run_id for v in versions] == [run.info.run_id]

    # The same tokens and parameters: the run resumes from its last checkpoint, trains no
    # more and saves the same parameters as a new model version.
    run_pipeline(project_copy, "train_fine", TRAIN)
    summary = json.loads((project_copy / "data/08_reporting/train_fine_summary.json").read_text())
    assert summary["resumed_from_step"] == 4
    versions = sorted((project_copy / "data/06_models/fine_model").iterdir())
    assert len(versions) == 2
    first, second = (ModelDirectoryDataset(str(v / "fine_model")).load() for v in versions)
    assert first.config == second.config

    run_pipeline(project_copy, "evaluate", EVALUATE)
    run = latest_run(project_copy)
    assert run.info.status == "FINISHED"
    report = json.loads((project_copy / "data/08_reporting/evaluation/report.json").read_text())
    assert set(report["stage_metrics"]) == set(STAGES)
    assert len(report["utterances"]) == 2
    html = (project_copy / "data/08_reporting/evaluation/index.html").read_text()
    for entry in report["utterances"]:
        assert entry["utterance_id"] in html
    for stage in STAGES:
        assert f"{stage}_heldout/loss" in run.data.metrics
    assert "original_heldout/cer_mean" in run.data.metrics  # the recordings were heard
    assert "synthesis/duration_ratio_mean" in run.data.metrics or any(
        "no_audio" in u["metrics"] for u in report["utterances"])
    client = mlflow.MlflowClient(f"sqlite:///{project_copy}/data/09_tracking/mlflow.db")
    assert any(a.path == "evaluation/index.html"
               for a in client.list_artifacts(run.info.run_id, "evaluation"))

    # Editing the training parameters after the runs changes nothing in how their models
    # are evaluated: each layout comes from the metadata saved with its model.
    run_pipeline(project_copy, "evaluate", {
        **EVALUATE, "evaluate.hearing.enabled": False,
        "train_semantic.data.history_drop_prob": 0.0,
        "train_coarse.data.semantic_window": 8, "train_fine.data.window": 8})
    again = json.loads((project_copy / "data/08_reporting/evaluation/report.json").read_text())
    for stage in STAGES:
        assert again["stage_metrics"][stage] == pytest.approx(report["stage_metrics"][stage])

    run_pipeline(project_copy, "synthesize", {"synthesize.text": "Hello there. Good morning."})
    (wav,) = (project_copy / "data/07_model_output/synthesized.wav").glob("*/synthesized.wav")
    audio, rate = sf.read(wav)
    assert rate == 24_000 and audio.ndim == 1
    assert len(audio) >= 320, len(audio)  # at least one codec frame (75 Hz at 24 kHz)
    assert np.isfinite(audio).all()
    assert np.abs(audio).max() > 1e-3 and np.sqrt(np.mean(audio**2)) > 1e-4  # not silence


@pytest.mark.slow
def test_bad_training_parameter_fails_at_start_naming_its_key(project_copy: Path) -> None:
    with pytest.raises(Exception, match=r"TrainConfig\.steps must be an int >= 1"):
        run_pipeline(project_copy, "train_coarse", {"train_coarse.train.steps": 0})
    assert not (project_copy / "data/06_models").exists()


def test_stage_comes_from_the_pipeline_not_the_parameters() -> None:
    with pytest.raises(ValueError, match="train.stage is set by the pipeline"):
        TrainStageParams.model_validate({"train": {"steps": 2, "stage": "coarse"},
                                         "run_dir": "unused"})
    (node,) = create_stage_pipeline("fine").nodes
    assert node.func.keywords == {"stage": "fine"} and node.func.__name__ == "train_fine"
