"""What a kedro command prints in a terminal: progress and results, no notices to ignore."""

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


def kedro(project: Path, *args: str) -> tuple[int, str]:
    """Run ``kedro <args>`` in ``project`` as a user would, output piped (not a terminal)."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT / "src"), "COLUMNS": "1000"}
    done = subprocess.run([sys.executable, "-m", "kedro", *args], cwd=project, env=env,
                          capture_output=True, text=True, timeout=600)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.slow
def test_a_piped_run_shows_progress_and_results_not_dataset_chatter(project_copy: Path):
    code, out = kedro(project_copy, "run", "--pipelines=ingest", "--params",
                      "ingest.demo_corpus.num_speakers=2,ingest.demo_corpus.utterances_per_speaker=3")
    assert code == 0, out
    assert "ingest: 100%" in out  # the progress bar, once finished
    assert "Loading data from" not in out and "Saving data to" not in out
    assert "\x1b[A" not in out  # no cursor-up codes of nested bars in a log file
    assert "register_new_resolver" not in out
    assert len(out.splitlines()) < 40, out


@pytest.mark.slow
def test_a_parameter_typo_is_one_line_naming_the_key(project_copy: Path):
    code, out = kedro(project_copy, "run", "--pipelines=ingest",
                      "--params", "ingest.processing.min_duraton_s=1")
    assert code != 0
    assert out.strip() == ("Parameter validation failed: ingest.processing.min_duraton_s: "
                           "Unexpected keyword argument"), out


def test_readme_uses_kedro_1_option_names():
    readme = (PROJECT / "README.md").read_text()
    assert "--pipeline=" not in readme and "--pipeline " not in readme
