"""MLflow runs left RUNNING by a killed process are marked KILLED by the next start."""

import os
import socket
import subprocess
import sys

import mlflow

from bark_kedro.integrity_hooks import mark_dead_runs_killed, process_start


def test_runs_of_dead_processes_are_marked_killed_with_a_note(tmp_path, mlflow_db):
    client = mlflow.MlflowClient(mlflow_db)
    experiment = client.create_experiment("e", artifact_location=str(tmp_path / "artifacts"))
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    dead_pid = int(child.stdout)
    host = socket.gethostname()

    def run(pid, on_host=host, start=""):
        return client.create_run(experiment, tags={
            "process.host": on_host, "process.pid": str(pid), "process.start": start}).info.run_id

    dead = run(dead_pid)
    alive = run(os.getpid(), start=process_start(os.getpid()))
    reused = run(os.getpid(), start="1")  # the pid now belongs to another process
    elsewhere = run(dead_pid, on_host="another-host")
    untracked = client.create_run(experiment).info.run_id
    current = run(dead_pid)

    killed = mark_dead_runs_killed(client, [experiment], current)
    assert sorted(killed) == sorted([dead, reused])
    status = {r: client.get_run(r).info.status
              for r in (dead, alive, reused, elsewhere, untracked, current)}
    assert status == {dead: "KILLED", alive: "RUNNING", reused: "KILLED", elsewhere: "RUNNING",
                      untracked: "RUNNING", current: "RUNNING"}
    note = client.get_run(dead).data.tags["mlflow.note.content"]
    assert f"process {dead_pid} on {host}" in note and current in note
