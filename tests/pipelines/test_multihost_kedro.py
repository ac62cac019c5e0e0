"""Two real processes of ``kedro run --pipelines=train_coarse`` (coordinator on 127.0.0.1).

Every process trains, reading only its own slice of the token shards; only process 0 writes
the model, the reports and the project's MLflow records (process 1 tracks into a throwaway
store in its temp directory).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from bark_kedro.tokenizers.shards import ShardedTable
from tests.helpers.kedro_runs import FAST_TOKENIZE as FAST
from tests.helpers.kedro_runs import ingest_demo_corpus as ingest
from tests.helpers.kedro_runs import run_pipeline

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ["--pipelines=train_coarse", "--params=train_coarse.train.steps=2,"
         "train_coarse.train.eval_every=2,train_coarse.train.checkpoint_every=2,"
         "train_coarse.train.tokens_per_batch=1024,train_coarse.train.progress=False"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_kedro_processes_train_one_model_and_only_process_0_writes(project_copy: Path,
                                                                       tmp_path: Path) -> None:
    ingest(project_copy, utterances_per_speaker=4, output_dir="data/02_intermediate")
    run_pipeline(project_copy, "tokenize", FAST)
    port = _free_port()
    temp = [tmp_path / f"tmp_{i}" for i in range(2)]
    procs = []
    for index in range(2):
        temp[index].mkdir()
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), JAX_PLATFORMS="cpu",
                   TMPDIR=str(temp[index]), JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                   JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(index),
                   BARK_KEDRO_READ_LOG=str(tmp_path / "read"))
        procs.append(subprocess.Popen([sys.executable, "-m", "kedro", "run", *TRAIN],
                                      cwd=project_copy, env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    outputs = [proc.communicate(timeout=900)[0] for proc in procs]
    for proc, output in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, output[-3000:]
    assert "process 1 of 2" in outputs[1] or "process 1: catalog entries" in outputs[1]

    assert len(list((project_copy / "data/06_models/coarse_model").iterdir())) == 1
    client = mlflow.MlflowClient(f"sqlite:///{project_copy}/data/09_tracking/mlflow.db")
    experiment = client.get_experiment_by_name("bark_kedro")
    runs = client.search_runs([experiment.experiment_id],
                              filter_string="tags.pipeline = 'train_coarse'")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.tags["device.process_count"] == "2"
    assert runs[0].data.tags["device.device_count"] == "2"
    assert (temp[1] / "bark_kedro_mlflow_process_1.db").is_file()
    assert not (temp[0] / "bark_kedro_mlflow_process_1.db").exists()

    # each process read and laid out its own records; together every train record
    (codec,) = (project_copy / "data/05_model_input/codec_tokens.parquet").glob(
        "*/codec_tokens.parquet")
    index = ShardedTable(codec).index
    for split in ("train", "validation"):
        read = [set(json.loads((tmp_path / "read" / f"coarse-{split}-process{k}.json")
                               .read_text())) for k in range(2)]
        assert not read[0] & read[1], split
        assert split == "validation" or (read[0] and read[1])
        assert read[0] | read[1] == set(index["utterance_id"][index["split"] == split]), split
