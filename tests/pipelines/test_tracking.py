"""The MLflow adapters: metric names, step logs, dataset inputs, registered stage models."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from bark_kedro.models import build_model, coarse_config, save_model
from bark_kedro.pipelines import tracking
from tests.models.reference_models import VOCAB


@pytest.fixture
def store(mlflow_db: str, tmp_path: Path):
    """A client of a fresh store, made the tracking URI (and undone: no active experiment
    is left for other tests); its artifacts stay in the test's folder, not ./mlruns."""
    uri = mlflow_db
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    client.experiment_id = client.create_experiment(
        "tracking-test", artifact_location=(tmp_path / "artifacts").as_uri())
    yield client
    if mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)


def test_metric_names_have_one_slash_and_the_stage_as_section(store) -> None:
    assert tracking.metric_key("tokens", "stages.codec/audio_s") == "tokens/stages_codec_audio_s"
    with mlflow.start_run(experiment_id=store.experiment_id) as run:
        tracking.mlflow_step_logger("train_coarse")(3, {"loss": 2.5, "ok": True})
        tracking.mlflow_step_logger("train_coarse.val")(4, {"loss": 2.0})
        dataset = tracking.SectionMetricsDataset(section="synthesis", stage_label="heldout")
        dataset.save(tracking.as_mlflow_metrics({"coarse/loss": 1.5, "mcd_db_mean": 9.0}))
    metrics = store.get_run(run.info.run_id).data.metrics
    assert metrics == {"coarse/train_loss": 2.5, "coarse/val_loss": 2.0,
                       "coarse_heldout/loss": 1.5, "synthesis/mcd_db_mean": 9.0}
    assert [m.step for m in store.get_metric_history(run.info.run_id, "coarse/val_loss")] == [4]


def test_parameter_counts_go_to_the_stage_section(store) -> None:
    counts = {"trainable": 1_179_648, "frozen": 92_247_552, "total": 93_427_200}
    tracking.log_parameter_counts("fine", counts)  # no active run: nothing, no error
    with mlflow.start_run(experiment_id=store.experiment_id) as run:
        tracking.log_parameter_counts("fine", counts)
    metrics = store.get_run(run.info.run_id).data.metrics
    assert metrics == {f"fine_params/{key}": float(value) for key, value in counts.items()}


def test_run_name_shows_the_overrides_and_a_fingerprint() -> None:
    params = {"train_coarse.train.optimizer.learning_rate": 0.001}
    fingerprint = tracking.config_fingerprint(params)
    assert fingerprint != tracking.config_fingerprint({**params, "x": 1})
    name = tracking.run_name("train_coarse", params, fingerprint)
    assert name == f"train_coarse #{fingerprint} optimizer.learning_rate=0.001"
    assert tracking.run_name("ingest", {}, "abc") == "ingest #abc"


def test_dataset_inputs_carry_name_digest_source_and_version(store, tmp_path: Path) -> None:
    source = (tmp_path / "codec_tokens.parquet").as_posix()
    with mlflow.start_run(experiment_id=store.experiment_id) as run:
        tracking.log_dataset_input("codec_tokens", source, "2026-01-01T00.00.00.000Z", "read")
        tracking.log_dataset_input("semantic_model", source, "v2", "written")
    run = store.get_run(run.info.run_id)
    assert tracking.dataset_versions(run, "read") == {"codec_tokens": "2026-01-01T00.00.00.000Z"}
    assert tracking.dataset_versions(run) == {"codec_tokens": "2026-01-01T00.00.00.000Z",
                                              "semantic_model": "v2"}
    (entry, _) = run.inputs.dataset_inputs
    assert entry.dataset.digest and source in entry.dataset.source


def test_a_registered_stage_model_loads_back_through_the_project(store, tmp_path: Path) -> None:
    model = build_model(coarse_config("test", VOCAB), seed=5)
    directory = save_model(tmp_path / "coarse_model", model)
    with mlflow.start_run(experiment_id=store.experiment_id) as run:
        tracking.register_stage_model("coarse_model", "bark_kedro.coarse_model", directory,
                                      {"dataset_versions": {"codec_tokens": "v1"}})
    (version,) = store.search_model_versions("name='bark_kedro.coarse_model'")
    assert version.run_id == run.info.run_id
    loaded = mlflow.pyfunc.load_model("models:/bark_kedro.coarse_model/1")
    assert loaded.metadata.metadata["dataset_versions"] == {"codec_tokens": "v1"}
    assert loaded.unwrap_python_model().model.config == model.config
