"""Fault injection for the reliability suite (not a test module): `kedro run` in a project copy
as a child process, killed at a chosen moment, runs at once, and a small full file system."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TOKENIZE_FAST = ("tokenize.progress=False,tokenize.semantic.n_clusters=8,"
                 "tokenize.semantic.max_iter=10,tokenize.codec.kmeans_iters=2,"
                 "tokenize.codec.max_init_frames=1024,tokenize.codec.weights=random")
DEMO_SMALL = ("ingest.demo_corpus.num_speakers=2,ingest.demo_corpus.utterances_per_speaker=4,"
              "ingest.processing.validation_fraction=0.3,ingest.progress=False")


def make_project(root: Path) -> Path:
    """A copy of the project's configuration under ``root`` (its own data and MLflow store)."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(PROJECT_ROOT / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    (root / "conf" / "local").mkdir()
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(PROJECT_ROOT / name, root / name)
    (root / "src" / "bark_kedro").mkdir(parents=True)
    return root


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PROJECT_ROOT / "src"), env.get("PYTHONPATH", "")) if p)
    return env


def start_kedro(project: Path, *args: str, log: Path | None = None) -> subprocess.Popen:
    """``kedro run <args>`` in ``project`` as a child process (its own process group)."""
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 - closed with the child
    return subprocess.Popen(
        [sys.executable, "-m", "kedro", "run", *args], cwd=project, env=_environment(),
        stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def run_kedro(project: Path, *args: str, timeout_s: float = 900) -> subprocess.CompletedProcess:
    """``kedro run <args>`` to its end; the output is kept for the assertion message."""
    return subprocess.run([sys.executable, "-m", "kedro", "run", *args], cwd=project,
                          env=_environment(), capture_output=True, text=True, timeout=timeout_s)


def kill_after(process: subprocess.Popen, seconds: float) -> bool:
    """SIGKILL the child's process group after ``seconds``; False if it had already ended."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return True


def visible_temporaries(project: Path) -> list[Path]:
    """Temporary entries of interrupted writers under ``data/``."""
    return sorted(p for p in (project / "data").rglob(".*.tmp"))


def mlflow_runs(project: Path) -> list[mlflow.entities.Run]:
    client = mlflow.MlflowClient(f"sqlite:///{project}/data/09_tracking/mlflow.db")
    experiment = client.get_experiment_by_name("bark_kedro")
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


def versioned_table(project: Path, relative: str, version: str) -> pd.DataFrame:
    path = project / relative
    return pd.read_parquet(path / version / path.name)


@contextmanager
def tiny_filesystem(path: Path, size: str = "256k") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path``; raises ``OSError`` where mounting is refused
    (not root, no CAP_SYS_ADMIN) so the caller can skip with the reason."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise OSError(f"cannot mount a tmpfs at {path}: {done.stderr.strip() or done.returncode}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


def fill(folder: Path) -> None:
    """Fill the file system holding ``folder`` up to the last byte."""
    try:
        with open(folder / "filler", "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    except OSError:
        pass
