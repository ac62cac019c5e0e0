"""kedro-viz shows the pipelines with their datasets in Kedro's layers."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path


def test_viz_build_shows_ingest_datasets_in_layers(project_copy: Path) -> None:
    subprocess.run(["kedro", "viz", "build"], cwd=project_copy, check=True, capture_output=True)
    graph = json.loads((project_copy / "build/api/main").read_text())
    layers = {node["name"]: node.get("layer") for node in graph["nodes"] if node["type"] == "data"}
    assert layers["source_utterances"] == "raw"
    assert layers["utterances"] == "primary"
    assert layers["rejected_utterances"] == "primary"
    assert layers["ingest_summary"] == "reporting"
    tasks = {node["name"] for node in graph["nodes"] if node["type"] == "task"}
    assert {"list_source_utterances", "ingest_utterances", "summarize_ingest"} <= tasks
