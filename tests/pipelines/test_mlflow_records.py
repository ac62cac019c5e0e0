"""What a user sees of a run in MLflow: its name, tags, parameters, dataset inputs, models."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from bark_kedro.datasets.model_directory import ModelDirectoryDataset
from bark_kedro.pipelines.tracking import dataset_versions
from tests.helpers.kedro_runs import FAST_TOKENIZE as FAST
from tests.helpers.kedro_runs import ingest_demo_corpus as ingest
from tests.helpers.kedro_runs import latest_run, run_pipeline

TINY_COARSE = {
    "train_coarse.train.steps": 2,
    "train_coarse.train.eval_every": 2,
    "train_coarse.train.checkpoint_every": 2,
    "train_coarse.train.tokens_per_batch": 1024,
    "train_coarse.train.progress": False,
    "train_coarse.train.optimizer.learning_rate": 0.001,
}
TOKEN_TABLES = ("text_tokens", "semantic_tokens", "codec_tokens")


@pytest.mark.slow
def test_a_training_run_reads_well_in_mlflow(project_copy: Path) -> None:
    ingest(project_copy, utterances_per_speaker=6, output_dir="data/02_intermediate")
    run_pipeline(project_copy, "tokenize", FAST)
    tokenize_run = latest_run(project_copy)
    run_pipeline(project_copy, "train_coarse", TINY_COARSE)
    run = latest_run(project_copy)
    client = mlflow.MlflowClient(f"sqlite:///{project_copy}/data/09_tracking/mlflow.db")

    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"

    # the name tells this run from another coarse run with other parameters
    assert run.info.run_name.startswith("train_coarse ")
    assert "optimizer.learning_rate=0.001" in run.info.run_name
    assert run.info.run_name.split()[1].startswith("#")  # the fingerprint shows first
    assert "learning_rate=0.001" in run.data.tags["mlflow.note.content"]

    # a few tags: no copies of Kedro's run facts, no per-stage device tags
    tags = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
    assert {"pipeline", "kedro_env", "kedro_session_id", "kedro_command",
            "device.platform"} <= set(tags)
    assert not {"runner", "run_id", "runtime_params", "project_path"} & set(tags)
    assert not any(k.startswith(("dataset.", "train_coarse.platform")) for k in tags)
    assert len(tags) <= 16, sorted(tags)
    assert tokenize_run.data.tags["codec_weights"] == "random"

    # parameters: the flattened keys of what the pipeline's nodes take, once, no reprs
    params = run.data.params
    assert params["train_coarse.train.optimizer.learning_rate"] == "0.001"
    assert all(key.startswith("train_coarse.") for key in params), sorted(params)
    assert "train_coarse" not in params
    assert not any("Config(" in value for value in params.values())
    assert "train_coarse.data.semantic_window" not in params  # None: sized from the model
    assert "train_coarse.data.max_buckets" in params
    assert not {"train_coarse.data.n_codes_given", "train_coarse.data.codebooks"} & set(params)

    # dataset inputs: the token versions the model was trained on
    read = dataset_versions(run, "read")
    assert set(TOKEN_TABLES) <= set(read)
    assert read["codec_tokens"] == dataset_versions(tokenize_run, "written")["codec_tokens"]
    for entry in run.inputs.dataset_inputs:
        assert entry.dataset.digest and entry.dataset.source

    # metrics: one scheme, <section>/<name>, the stage's curves under its own section
    assert all(key.count("/") == 1 for key in run.data.metrics), sorted(run.data.metrics)
    assert {"coarse/train_loss", "coarse/val_loss"} <= set(run.data.metrics)
    assert not any(k.split("/")[1].startswith(("final_", "initial_")) for k in run.data.metrics)
    assert sorted(run.data.metrics)[0].startswith("coarse/train_")  # the UI opens on curves
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "coarse/train_loss")]
    assert steps == [1, 2]

    # the trained stage is a registered model whose artifact loads through the project
    (version,) = client.search_model_versions("name='bark_kedro.coarse_model'")
    assert version.run_id == run.info.run_id
    mlflow.set_tracking_uri(f"sqlite:///{project_copy}/data/09_tracking/mlflow.db")
    loaded = mlflow.pyfunc.load_model(f"models:/bark_kedro.coarse_model/{version.version}")
    assert loaded.metadata.metadata["dataset_versions"]["codec_tokens"] == read["codec_tokens"]
    model = loaded.unwrap_python_model().model
    (saved,) = (project_copy / "data/06_models/coarse_model").iterdir()
    assert model.config == ModelDirectoryDataset(str(saved / "coarse_model")).load().config
