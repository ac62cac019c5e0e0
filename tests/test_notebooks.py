"""The notebook in notebooks/ runs top to bottom on a finished (tiny) run."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.helpers.kedro_runs import FAST_TOKENIZE as FAST
from tests.helpers.kedro_runs import PROJECT_ROOT, run_pipeline
from tests.helpers.kedro_runs import ingest_demo_corpus as ingest

TINY_TRAINING = {
    f"train_{stage}.train.{key}": value
    for stage in ("semantic", "coarse", "fine")
    for key, value in {"steps": 2, "eval_every": 2, "checkpoint_every": 2,
                       "tokens_per_batch": 1024, "progress": False}.items()
}


@pytest.mark.slow
def test_finished_run_notebook_executes(project_copy: Path, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    ingest(project_copy, utterances_per_speaker=6, output_dir="data/02_intermediate")
    run_pipeline(project_copy, "tokenize", FAST)
    run_pipeline(project_copy, "train", TINY_TRAINING)
    notebook = nbformat.read(PROJECT_ROOT / "notebooks" / "finished_run.ipynb", as_version=4)
    monkeypatch.setenv("BARK_KEDRO_PROJECT", str(project_copy))
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(project_copy)}}).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code"
               for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("audio/wav" in o.get("data", {}) or "text/html" in o.get("data", {})
               and "<audio" in o["data"]["text/html"] for o in outputs)
    assert any("image/png" in o.get("data", {}) for o in outputs)
