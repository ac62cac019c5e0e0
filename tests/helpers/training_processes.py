"""Training runs in separate processes (``tests.training.tiny_run``) and what they leave."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def tiny_run_command(run_dir, out, *args) -> list[str]:
    """The command line of one tiny training run writing its results to ``out``."""
    return [sys.executable, "-m", "tests.training.tiny_run", str(run_dir), str(out), *args]


def process_env(**extra) -> dict[str, str]:
    """This checkout's package and tests, whichever bark_kedro is installed, on the CPU."""
    path = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    env = dict(os.environ, PYTHONPATH=path, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
               JAX_PLATFORMS="cpu")
    return env | extra


def complete_checkpoints(directory: Path) -> list[int]:
    """The steps of the committed checkpoints in ``directory``."""
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def load_results(prefix: Path, mesh: str) -> tuple[dict, dict]:
    """The final parameters and the report a tiny run wrote."""
    params = dict(np.load(f"{prefix}{mesh}.npz"))
    return params, json.loads(Path(f"{prefix}{mesh}.json").read_text())
