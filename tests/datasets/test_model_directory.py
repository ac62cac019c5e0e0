"""ModelDirectoryDataset and ModelDataLayoutDataset: versioned saves, loads, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from flax import nnx
from kedro.io import DatasetError, Version

from bark_kedro.datasets.model_directory import ModelDataLayoutDataset, ModelDirectoryDataset
from bark_kedro.models import build_model, coarse_config, load_metadata
from tests.models.reference_models import VOCAB


def _params(model) -> list[np.ndarray]:
    return [np.asarray(x) for x in nnx.state(model, nnx.Param).flat_state().leaves]


def test_versions_are_kept_and_latest_loads(tmp_path: Path) -> None:
    config = coarse_config("test", VOCAB)
    first, second = build_model(config, seed=0), build_model(config, seed=1)
    root = tmp_path / "coarse_model"
    ModelDirectoryDataset(str(root), Version(None, "2026-01-01T00.00.00.000Z")).save(first)
    ModelDirectoryDataset(str(root), Version(None, "2026-01-02T00.00.00.000Z")).save(
        (second, {"step": 7})
    )
    assert sorted(p.name for p in root.iterdir()) == [
        "2026-01-01T00.00.00.000Z", "2026-01-02T00.00.00.000Z"]

    latest = ModelDirectoryDataset(str(root), Version(None, None)).load()
    for a, b in zip(_params(latest), _params(second), strict=True):
        np.testing.assert_array_equal(a, b)
    assert latest.config == config
    pinned = ModelDirectoryDataset(str(root), Version("2026-01-01T00.00.00.000Z", None)).load()
    for a, b in zip(_params(pinned), _params(first), strict=True):
        np.testing.assert_array_equal(a, b)
    assert load_metadata(root / "2026-01-02T00.00.00.000Z" / "coarse_model") == {"step": 7}


def test_missing_model_says_which_pipeline_writes_it(tmp_path: Path) -> None:
    dataset = ModelDirectoryDataset(str(tmp_path / "fine_model"))
    assert not dataset.exists()
    with pytest.raises(DatasetError, match="fine_model"):
        dataset.load()


def test_data_layout_comes_from_the_model_version_it_reads(tmp_path: Path) -> None:
    config = coarse_config("test", VOCAB)
    root = tmp_path / "coarse_model"
    for version, window in (("2026-01-01T00.00.00.000Z", 12), ("2026-01-02T00.00.00.000Z", 20)):
        ModelDirectoryDataset(str(root), Version(None, version)).save(
            (build_model(config, seed=0), {"data": {"semantic_window": window}}))
    assert ModelDataLayoutDataset(str(root), Version(None, None)).load() == {
        "semantic_window": 20}
    pinned = ModelDataLayoutDataset(str(root), Version("2026-01-01T00.00.00.000Z", None))
    assert pinned.load() == {"semantic_window": 12}


def test_model_without_a_layout_fails_naming_it_or_logs_the_fallback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "fine_model"
    ModelDirectoryDataset(str(root), Version(None, "2026-01-01T00.00.00.000Z")).save(
        (build_model(coarse_config("test", VOCAB), seed=0), {"summary": {"steps": 3}}))
    with pytest.raises(DatasetError, match=r"fine_model.*no training data layout.*retrain"):
        ModelDataLayoutDataset(str(root), Version(None, None)).load()
    fallback = ModelDataLayoutDataset(str(root), Version(None, None),
                                      fallback_layout={"window": 16})
    with caplog.at_level("WARNING"):
        assert fallback.load() == {"window": 16}
    assert "fallback_layout" in caplog.text and "fine_model" in caplog.text
    with pytest.raises(DatasetError, match="written with the model"):
        fallback.save({"window": 16})
