"""What a kedro command prints in a terminal: no third-party notices a user cannot act on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_kedro_command_prints_no_third_party_notices():
    env = {**os.environ, "PYTHONPATH": str(PROJECT / "src"), "COLUMNS": "1000"}  # no wrapping
    done = subprocess.run([sys.executable, "-m", "kedro", "registry", "list"], cwd=PROJECT,
                          env=env, capture_output=True, text=True, timeout=300)
    out = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 0, out
    assert "train_coarse" in out  # the command did run in the project
    assert "Add type hints to the `predict` method" not in out
    assert "register_new_resolver" not in out
    assert "Traceback" not in out
