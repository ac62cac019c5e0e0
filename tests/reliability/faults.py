"""Fault injection for the reliability suite (not a test module): `kedro run` in a project copy
as a child process, killed at a chosen moment, runs at once, and a small full file system."""

from __future__ import annotations

import json
import os
import random
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

from bark_kedro.pipelines.tracking import dataset_versions

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TOKENIZE_FAST = ("tokenize.progress=False,tokenize.semantic.n_clusters=8,"
                 "tokenize.semantic.max_iter=10,tokenize.codec.kmeans_iters=2,"
                 "tokenize.codec.max_init_frames=1024,tokenize.codec.weights=random")
TOKEN_TABLES = ("text_tokens", "semantic_tokens", "codec_tokens", "rejected_tokenization")
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


# ---- scenarios: each returns what happened, for the tests to assert and the benchmark to count


def latest_commit(project: Path) -> dict | None:
    """The newest ``tokenize_commit`` record, or None before any tokenize run completed."""
    folder = project / "data/05_model_input/tokenize_commit.json"
    if not folder.is_dir() or not any(folder.iterdir()):
        return None
    newest = sorted(folder.iterdir())[-1]
    return json.loads((newest / folder.name).read_text())


def committed_set_is_whole(project: Path) -> bool:
    """Whether every token table of the newest committed set reads whole."""
    record = latest_commit(project)
    if record is None:
        return False
    try:
        for name in TOKEN_TABLES:
            versioned_table(project, f"data/05_model_input/{name}.parquet", record["version"])
    except Exception:  # noqa: BLE001 - any failure to read is what this looks for
        return False
    return True


def tokenize_kills(root: Path, kills: int = 3, seed: int = 17) -> dict:
    """Ingest and tokenize a small demo corpus, then kill ``kills`` tokenize runs at random
    points and run once more. Returns counts and the checks after each kill."""
    project = make_project(root / "project")
    done = run_kedro(project, "--pipeline=ingest", f"--params={DEMO_SMALL}")
    started = time.monotonic()
    if not done.returncode:
        done = run_kedro(project, "--pipeline=tokenize", f"--params={TOKENIZE_FAST}")
    full_run_s = time.monotonic() - started
    if done.returncode:
        raise RuntimeError(f"the runs before the kills failed:\n{done.stdout[-3000:]}")
    first = latest_commit(project)["version"]
    rng = random.Random(seed)
    # Killed at random points of a run's span (start-up included), as long as a whole run took.
    result = {"killed": 0, "whole_after_kill": 0, "unchanged_after_kill": 0,
              "full_run_s": full_run_s}
    for attempt in range(kills):
        process = start_kedro(project, "--pipeline=tokenize", f"--params={TOKENIZE_FAST}",
                              log=root / f"killed{attempt}.log")
        if not kill_after(process, rng.uniform(0.1, 0.9) * full_run_s):
            first = latest_commit(project)["version"]  # it finished first: not a kill
            continue
        result["killed"] += 1
        result["whole_after_kill"] += committed_set_is_whole(project)
        result["unchanged_after_kill"] += latest_commit(project)["version"] == first
    done = run_kedro(project, "--pipeline=tokenize", f"--params={TOKENIZE_FAST}")
    statuses = [run.info.status for run in mlflow_runs(project)]
    result.update(
        attempts=kills, next_run_ok=done.returncode == 0, log=done.stdout[-3000:],
        temporaries_left=len(visible_temporaries(project)),
        new_commit=(latest_commit(project) or {}).get("version", "") > first,
        whole_at_end=committed_set_is_whole(project),
        marked_killed=statuses.count("KILLED"), left_running=statuses.count("RUNNING"),
        project=project)
    return result


def training_kill(project: Path, root: Path, seed: int = 5) -> dict:
    """Kill ``train_semantic`` (its public Kedro pipeline) at a random point, then rerun it."""
    params = "--params=train_semantic.train.steps=20,train_semantic.train.progress=False"
    process = start_kedro(project, "--pipeline=train_semantic", params, log=root / "train.log")
    killed = kill_after(process, random.Random(seed).uniform(10.0, 30.0))
    done = run_kedro(project, "--pipeline=train_semantic", params)
    models = project / "data/06_models/semantic_model"
    loadable = True
    try:
        from bark_kedro.models import load_model

        for version in sorted(models.iterdir()) if models.is_dir() else []:
            load_model(version / "semantic_model")
    except Exception:  # noqa: BLE001 - a version that does not load is what this looks for
        loadable = False
    return {"killed": killed, "next_run_ok": done.returncode == 0, "log": done.stdout[-3000:],
            "every_version_loads": loadable,
            "temporaries_left": len(visible_temporaries(project))}


def concurrent_ingests(root: Path, corpora: list[tuple[Path, set[str]]]) -> dict:
    """Run one ``ingest`` per manifest at once in one project; which ran clean and unmixed."""
    project = make_project(root / "project")
    # MLflow creates a new SQLite store with migrations that two first runs would race on
    # (a limit of MLflow's store, not of the pipelines): the store exists before they start.
    (project / "data/09_tracking").mkdir(parents=True)
    mlflow.MlflowClient(f"sqlite:///{project}/data/09_tracking/mlflow.db").search_experiments()
    runs = [start_kedro(project, "--pipeline=ingest", "--params=" + ",".join([
        "ingest.source.kind=manifest", f"ingest.source.path={path}", "ingest.progress=False"]),
        log=root / f"ingest{i}.log") for i, (path, _) in enumerate(corpora)]
    codes = [run.wait(timeout=900) for run in runs]
    client = mlflow.MlflowClient(f"sqlite:///{project}/data/09_tracking/mlflow.db")
    by_source = {run.data.params.get("ingest.source.path"): run for run in mlflow_runs(project)}
    own = []
    for path, ids in corpora:
        run = by_source.get(str(path))
        version = (dataset_versions(client.get_run(run.info.run_id), "written").get("utterances")
                   if run else None)
        table = (versioned_table(project, "data/03_primary/utterances.parquet", version)
                 if version else pd.DataFrame({"utterance_id": []}))
        own.append(set(table["utterance_id"]) == ids)
    return {"exit_codes": codes, "own_corpus": own,
            "logs": [(root / f"ingest{i}.log").read_text()[-2000:] for i in range(len(corpora))]}
