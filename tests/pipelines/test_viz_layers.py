"""kedro-viz can lay every registered pipeline out in layers (no layer depends on a later one);
every box has a layer and a name of its own, and the audio folders are boxes too."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from kedro_viz.data_access import data_access_manager
from kedro_viz.integrations.kedro.data_loader import load_data
from kedro_viz.server import populate_data


@pytest.mark.slow
def test_every_pipeline_has_acyclic_layers_and_every_dataset_a_layer(
    project_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    catalog, pipelines, extras = load_data(project_copy)
    with caplog.at_level(logging.WARNING):
        populate_data(data_access_manager, catalog, pipelines, extras)
        for name in pipelines:
            layers = data_access_manager.get_sorted_layers_for_registered_pipeline(name)
            assert layers, name
    assert "circular dependency" not in caplog.text
    default = data_access_manager.get_sorted_layers_for_registered_pipeline("__default__")
    assert default.index("feature") < default.index("model_input") < default.index("models")
    assert default.index("intermediate") < default.index("primary") < default.index("feature")
    nodes = data_access_manager.get_nodes_for_registered_pipeline("__default__")
    layerless = {node.name for node in nodes if node.type == "data" and not node.layer}
    assert layerless == set()
    shown = [node.name.rsplit(".", 1)[-1] for node in nodes if node.type == "task"]
    assert len(shown) == len(set(shown)), sorted(shown)  # names without namespace, as expanded
    layers = {node.name: node.layer for node in nodes if node.type == "data"}
    assert layers["audio_24k"] == layers["audio_16k"] == "intermediate"
