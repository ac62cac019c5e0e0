"""A model and the data layout saved with it are read at one version, pinned or not."""

from __future__ import annotations

import pytest
from kedro.io import DataCatalog, Version

from bark_kedro.datasets.model_directory import ModelDirectoryDataset
from bark_kedro.integrity_hooks import InconsistentInputsError, align_model_layout_pins
from bark_kedro.models import build_model, coarse_config
from bark_kedro.pipelines import evaluate, synthesize
from tests.models.reference_models import VOCAB

OLD, NEW = "2026-01-01T00.00.00.000Z", "2026-01-02T00.00.00.000Z"
WINDOWS = {OLD: 12, NEW: 20}


@pytest.fixture(scope="module")
def models_root(tmp_path_factory):
    """Two versions of ``coarse_model``, each saved with its own data layout."""
    root = tmp_path_factory.mktemp("models")
    model = build_model(coarse_config("test", VOCAB), seed=0)
    for version, window in WINDOWS.items():
        ModelDirectoryDataset(str(root / "coarse_model"), Version(None, version)).save(
            (model, {"data": {"semantic_window": window}}))
    return root


def catalog(root, load_versions=None, save_version=None) -> DataCatalog:
    path = str(root / "coarse_model")
    config = {
        "coarse_model": {"type": "bark_kedro.datasets.model_directory.ModelDirectoryDataset",
                         "filepath": path, "versioned": True},
        "coarse_model_data_layout": {
            "type": "bark_kedro.datasets.model_directory.ModelDataLayoutDataset",
            "filepath": path, "versioned": True},
    }
    return DataCatalog.from_config(config, load_versions=load_versions or {},
                                   save_version=save_version)


@pytest.mark.parametrize("pinned_name", ["coarse_model", "coarse_model_data_layout"])
def test_pinning_one_pins_the_other(models_root, pinned_name) -> None:
    pinned = {pinned_name: OLD}
    cat = catalog(models_root, pinned)
    inputs = synthesize.create_pipeline().inputs()
    pins = align_model_layout_pins(cat, inputs, pinned)
    assert pins == {"coarse_model": OLD, "coarse_model_data_layout": OLD}
    assert cat.load("coarse_model_data_layout") == {"semantic_window": WINDOWS[OLD]}
    assert cat.get("coarse_model").resolve_load_version() == OLD


def test_unpinned_both_read_the_models_latest(models_root) -> None:
    cat = catalog(models_root)
    pins = align_model_layout_pins(cat, evaluate.create_pipeline().inputs(), {})
    assert pins == {"coarse_model": NEW, "coarse_model_data_layout": NEW}
    assert cat.load("coarse_model_data_layout") == {"semantic_window": WINDOWS[NEW]}


def test_pins_that_disagree_fail_naming_both_and_the_fix(models_root) -> None:
    pinned = {"coarse_model": OLD, "coarse_model_data_layout": NEW}
    with pytest.raises(InconsistentInputsError,
                       match=rf"coarse_model:{OLD} but coarse_model_data_layout:{NEW}.*"
                             rf"--load-versions=coarse_model:{OLD},"
                             rf"coarse_model_data_layout:{OLD}"):
        align_model_layout_pins(catalog(models_root, pinned),
                                synthesize.create_pipeline().inputs(), pinned)


def test_a_pipeline_reading_no_layout_is_left_alone(models_root) -> None:
    assert align_model_layout_pins(catalog(models_root), {"coarse_model"},
                                   {"coarse_model": OLD}) == {}


def test_a_run_that_trains_the_model_reads_the_layout_it_writes(models_root) -> None:
    """train + evaluate in one run: the evaluation reads the model this run trains, not the
    newest one on disk when the run started."""
    this_run = "2026-01-03T00.00.00.000Z"
    cat = catalog(models_root, save_version=this_run)
    pins = align_model_layout_pins(cat, evaluate.create_pipeline().inputs(), {},
                                   produced={"coarse_model"})
    assert pins == {"coarse_model_data_layout": this_run}
    assert cat.get("coarse_model")._version.load is None  # latest once this run saved it
