"""Two real JAX processes on this machine (coordinator on 127.0.0.1, gloo collectives).

The start-up reads ``JAX_COORDINATOR_ADDRESS`` / ``JAX_NUM_PROCESSES`` / ``JAX_PROCESS_ID``;
the two processes form one 2-device mesh, train like one process with two simulated
devices, and a run with one process killed resumes to the same parameters.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from bark_kedro.training import mesh as mesh_module
from tests.helpers.training_processes import ROOT, complete_checkpoints, load_results
from tests.helpers.training_processes import process_env as _env
from tests.helpers.training_processes import tiny_run_command as _command
from tests.training.synthetic import token_tables
from tests.training.tiny_run import sharded_tables

ARGS = ["--stage", "coarse", "--steps", "8", "--checkpoint-every", "2", "--dropout", "0.1",
        "--mesh", "2x1"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(command: list[str], n: int = 2, **env) -> list[subprocess.Popen]:
    port = _free_port()
    return [subprocess.Popen(
        command, cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env=_env(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES=str(n),
                 JAX_PROCESS_ID=str(i), **env)) for i in range(n)]


def _finish(procs: list[subprocess.Popen], timeout: float = 400) -> list[str]:
    outputs = [proc.communicate(timeout=timeout)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * len(procs), outputs
    return outputs


def test_distributed_arguments_come_from_the_environment(monkeypatch):
    calls = []
    monkeypatch.setattr(jax.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(jax.distributed, "initialize", lambda **k: calls.append(k))
    env = {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "JAX_NUM_PROCESSES": "4",
           "JAX_PROCESS_ID": "3"}
    assert mesh_module.maybe_initialize_distributed(env)
    assert calls == [{"coordinator_address": "10.0.0.1:1234", "num_processes": 4,
                      "process_id": 3}]
    # SLURM / Open MPI: JAX detects the processes itself
    assert mesh_module.maybe_initialize_distributed({"BARK_KEDRO_DISTRIBUTED": "1"})
    assert calls[-1] == {}
    slurm = {"JAX_COORDINATOR_ADDRESS": "node1:1234", "SLURM_JOB_ID": "7"}
    assert mesh_module.distributed_arguments(slurm) == {"coordinator_address": "node1:1234"}


@pytest.mark.parametrize(("env", "message"), [
    ({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2"}, "JAX_PROCESS_ID not set"),
    ({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "two", "JAX_PROCESS_ID": "0"},
     "JAX_NUM_PROCESSES='two' must be a non-negative integer"),
    ({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "2"},
     "JAX_PROCESS_ID=2 must be below JAX_NUM_PROCESSES=2"),
])
def test_an_incomplete_environment_is_named(env, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        mesh_module.distributed_arguments(env)


@pytest.mark.slow
def test_two_processes_form_one_mesh_and_sum_across_it():
    procs = _start([sys.executable, "-m", "tests.training.distributed_probe"])
    reports = [json.loads(out.strip().splitlines()[-1]) for out in _finish(procs, 120)]
    for index, report in enumerate(reports):
        assert report["process_index"] == str(index) and report["process_count"] == "2"
        assert report["device_count"] == "2" and report["local_device_count"] == "1"
        assert report["mesh_shape"] == "data=2,fsdp=1"
        assert report["cpu_collectives"] == "gloo"
        assert report["sum"] == 3 * 1.0 + 3 * 2.0  # each process's 3 values: its index + 1


def _steps(output: str) -> list[int]:
    return [int(m) for m in re.findall(r"^step (\d+)", output, re.MULTILINE)]


def _read_ids(folder: Path, split: str = "train") -> list[set[str]]:
    files = sorted(folder.glob(f"coarse-{split}-process*.json"))
    return [set(json.loads(f.read_text())) for f in files]


@pytest.mark.slow
@pytest.mark.parametrize("streamed", [False, True], ids=["in_memory", "streamed"])
def test_two_processes_train_like_two_devices_and_resume_after_a_kill(tmp_path, request,
                                                                      streamed):
    args = ARGS
    if streamed:  # the shards every process reads, written before they start
        from bark_kedro.training import stage_vocab

        tables = tmp_path / "tables"
        sharded_tables(token_tables(stage_vocab(40, 64, 1024), n_utterances=30), tables)
        args = [*ARGS, "--streamed", "--tables", str(tables)]
    # two simulated devices in one process: the reference loss curve
    subprocess.run(_command(tmp_path / "one", tmp_path / "one_", *args), cwd=ROOT, check=True,
                   env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=2",
                            BARK_KEDRO_READ_LOG=str(tmp_path / "read_one")),
                   capture_output=True, timeout=400)
    one_params, one = load_results(tmp_path / "one_", "2x1")

    run_dir, out = tmp_path / "two", tmp_path / "two_"
    outputs = _finish(_start(_command(run_dir, out, *args),
                             BARK_KEDRO_READ_LOG=str(tmp_path / "read_two")))
    if streamed:  # each process read its own records; together, those of one process
        for split in ("train", "validation"):
            (whole,), halves = _read_ids(tmp_path / "read_one", split), _read_ids(
                tmp_path / "read_two", split)
            assert len(halves) == 2 and halves[0] and halves[1], split
            assert not halves[0] & halves[1] and halves[0] | halves[1] == whole, split
    two_params, two = load_results(out, "2x1")
    assert two["summary"]["device"]["process_count"] == "2"
    assert two["summary"]["device"]["device_count"] == "2"
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-6)
    for name, value in one_params.items():
        np.testing.assert_allclose(two_params[name], value, atol=1e-6, err_msg=name)
    # process 0 alone reports; one checkpoint per step, committed once, on the shared storage
    assert _steps(outputs[0]) == list(range(1, 9)) and _steps(outputs[1]) == []
    assert complete_checkpoints(run_dir / "2x1") == [6, 8]
    assert not [p for p in (run_dir / "2x1").iterdir() if not p.name.isdigit()]

    # one process killed mid-run; the other fails or is stopped; both restarted
    killed_dir, killed_out = tmp_path / "killed", tmp_path / "killed_"
    command = _command(killed_dir, killed_out, *args, "--sleep", "0.3")
    procs = _start(command)
    request.addfinalizer(lambda: [p.kill() for p in procs if p.poll() is None])
    killed_after = None
    deadline = time.monotonic() + 400
    for line in procs[0].stdout:
        if not (match := re.match(r"step (\d+)", line)):
            continue  # gloo's connection messages
        step = int(match.group(1))
        saved = complete_checkpoints(killed_dir / "2x1")
        if saved and step >= saved[-1] + 2:
            procs[1].send_signal(signal.SIGKILL)
            killed_after = (saved[-1], step)
            break
        assert time.monotonic() < deadline
    assert killed_after is not None and killed_after[1] < 8
    procs[1].wait(timeout=60)
    try:
        procs[0].wait(timeout=120)  # the survivor's collectives fail without its peer
    except subprocess.TimeoutExpired:
        procs[0].kill()  # as a cluster launcher stops the rest of a job
        procs[0].wait(timeout=60)
    assert procs[1].returncode == -signal.SIGKILL and procs[0].returncode != 0
    assert not Path(f"{killed_out}2x1.npz").exists()

    outputs = _finish(_start(command[:-2]))
    resumed_params, resumed = load_results(killed_out, "2x1")
    assert resumed["summary"]["resumed_from_step"] >= killed_after[0]
    assert resumed["losses"] == two["losses"][-len(resumed["losses"]):]
    assert resumed_params.keys() == two_params.keys()
    for name, value in two_params.items():
        np.testing.assert_array_equal(resumed_params[name], value, err_msg=name)
