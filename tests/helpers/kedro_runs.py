"""Running the project's pipelines through Kedro sessions in a copy of the project, and
reading back their MLflow runs."""

from __future__ import annotations

from pathlib import Path

import mlflow
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from bark_kedro.pipelines.tracking import dataset_versions
from tests.helpers import PROJECT_ROOT

__all__ = ["PROJECT_ROOT", "FAST_TOKENIZE", "nested", "run_pipeline", "latest_run",
           "ingest_demo_corpus"]

FAST_TOKENIZE = {  # small enough for a test on 2 shared cores
    "tokenize.progress": False,
    "tokenize.semantic.n_clusters": 8,
    "tokenize.semantic.max_iter": 10,
    "tokenize.codec.kmeans_iters": 2,
    "tokenize.codec.max_init_frames": 1024,
    "tokenize.codec.weights": "random",
}


def nested(dotted: dict) -> dict:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}``, as ``kedro run --params`` does."""
    result: dict = {}
    for key, value in dotted.items():
        *parents, leaf = key.split(".")
        node = result
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return result


def run_pipeline(project: Path, pipeline: str, params: dict,
                 load_versions: dict[str, str] | None = None, env: str | None = None) -> None:
    """``kedro run --pipeline=<pipeline> --params=<params> [--env=<env>]`` in ``project``,
    in-process."""
    bootstrap_project(project)
    with KedroSession.create(project_path=project, env=env,
                             runtime_params=nested(params)) as session:
        session.run(pipeline_names=[pipeline], load_versions=load_versions or {})


def latest_run(project: Path) -> mlflow.entities.Run:
    """The newest MLflow run of the project's store, with its dataset inputs."""
    client = mlflow.MlflowClient(f"sqlite:///{project}/data/09_tracking/mlflow.db")
    experiment = client.get_experiment_by_name("bark_kedro")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])
    return client.get_run(runs[0].info.run_id)


def ingest_demo_corpus(project: Path, utterances_per_speaker: int, output_dir: str) -> str:
    """Ingest a 2-speaker demo corpus; the written version of ``utterances``."""
    run_pipeline(project, "ingest", {
        "ingest.demo_corpus.num_speakers": 2,
        "ingest.demo_corpus.utterances_per_speaker": utterances_per_speaker,
        "ingest.processing.validation_fraction": 0.3, "ingest.output_dir": output_dir,
        "ingest.progress": False})
    return dataset_versions(latest_run(project), "written")["utterances"]
