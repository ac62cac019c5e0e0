"""kedro-viz can lay every registered pipeline out in layers (no layer depends on a later one)."""

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
    layerless = {
        node.name for node in data_access_manager.get_nodes_for_registered_pipeline("__default__")
        if node.type == "data" and not node.layer
    }
    assert layerless == set()
