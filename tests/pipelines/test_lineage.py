"""kedro-viz shows the pipelines with their datasets in Kedro's layers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_viz_build_shows_the_lineage_from_corpus_to_report(project_copy: Path) -> None:
    subprocess.run([sys.executable, "-m", "kedro", "viz", "build"], cwd=project_copy,
                   check=True, capture_output=True)
    graph = json.loads((project_copy / "build/api/main").read_text())
    layers = {node["name"]: node.get("layer") for node in graph["nodes"] if node["type"] == "data"}
    assert layers["source_utterances"] == "raw"
    assert layers["utterances"] == "primary"
    assert layers["rejected_utterances"] == "primary"
    assert layers["ingest_summary"] == "reporting"
    for name in ("text_tokens", "semantic_tokens", "codec_tokens"):
        assert layers[name] == "model_input"
    for name in ("semantic_model", "coarse_model", "fine_model"):
        assert layers[name] == "models"
    for name in ("text_tokenizer", "semantic_tokenizer", "codec_model"):  # fitted, fed to tokens
        assert layers[name] == "feature"
    assert layers["evaluation_report"] == "reporting"
    assert layers["synthesized_audio"] == "model_output"
    names = {node["id"]: node.get("full_name", node["name"]) for node in graph["nodes"]}
    tasks = {names[node["id"]] for node in graph["nodes"] if node["type"] == "task"}
    assert {"list_source_utterances", "ingest_utterances", "summarize_ingest"} <= tasks
    assert {f"train_{s}.fit_{s}_model" for s in ("semantic", "coarse", "fine")} <= tasks

    # every model is downstream of the token tables: the edges reach it from codec_tokens
    edges = {(names[e["source"]], names[e["target"]]) for e in graph["edges"]}
    for stage in ("semantic", "coarse", "fine"):
        assert ("codec_tokens", f"train_{stage}.fit_{stage}_model") in edges
        assert (f"train_{stage}.fit_{stage}_model", f"{stage}_model") in edges
        assert (f"{stage}_model", "synthesize_text") in edges
