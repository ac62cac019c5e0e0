"""The synthesize pipeline's wiring, run in-process (DataCatalog + SequentialRunner): its
windows come from the data layouts saved with the models, not from ``params:train_*``."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from bark_kedro.pipelines import synthesize
from bark_kedro.pipelines.synthesize import nodes
from bark_kedro.pipelines.synthesize.params import GenerationParams, SynthesizeParams


def test_synthesize_reads_the_saved_layouts_and_no_training_parameters() -> None:
    inputs = synthesize.create_pipeline().inputs()
    assert not {name for name in inputs if name.startswith("params:train_")}
    assert {"coarse_model_data_layout", "fine_model_data_layout"} <= inputs


def test_the_saved_layouts_reach_the_synthesizer(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict = {}
    wave = np.linspace(-0.5, 0.5, 2400, dtype=np.float32)

    def fake_make_synthesizer(semantic, coarse, fine, tokenizer, codec, config, *,
                              coarse_layout, fine_layout, **kwargs):
        seen.update(models=(semantic, coarse, fine), coarse=coarse_layout, fine=fine_layout,
                    fit=kwargs["fit_windows_to_models"])
        return SimpleNamespace(synthesize=lambda text, voice, seed: wave * (seed + 1))

    monkeypatch.setattr(nodes, "make_synthesizer", fake_make_synthesizer)
    monkeypatch.setattr(nodes, "text_tokenizer_from_dict", lambda d: d)
    inputs = {
        "semantic_model": "S", "coarse_model": "C", "fine_model": "F",
        "coarse_model_data_layout": {"semantic_window": 24},
        "fine_model_data_layout": {"window": 16, "n_codes_given": 1},
        "text_tokenizer": {}, "codec_model": None,
        "params:generation": GenerationParams(),
        "params:synthesize": SynthesizeParams(text="Hello there.", seed=1),
    }
    catalog = DataCatalog({name: MemoryDataset(value, copy_mode="assign")
                           for name, value in inputs.items()})
    catalog["synthesized_audio"] = MemoryDataset(copy_mode="assign")
    SequentialRunner().run(synthesize.create_pipeline(), catalog)

    assert seen == {"models": ("S", "C", "F"), "coarse": {"semantic_window": 24},
                    "fine": {"window": 16, "n_codes_given": 1}, "fit": True}
    np.testing.assert_array_equal(catalog.load("synthesized_audio"), wave * 2)


def test_no_audio_fails_naming_the_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nodes, "make_synthesizer", lambda *a, **k: SimpleNamespace(
        synthesize=lambda text, voice, seed: np.zeros(0, np.float32)))
    monkeypatch.setattr(nodes, "text_tokenizer_from_dict", lambda d: d)
    with pytest.raises(ValueError, match=r"no audio for synthesize\.text='Hi\.'"):
        nodes.synthesize_text(None, None, None, {}, {}, {}, None, GenerationParams(),
                              SynthesizeParams(text="Hi."))
