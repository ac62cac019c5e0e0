"""The evaluate nodes lay out examples and windows with each model's saved training layout."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bark_kedro.pipelines import evaluate
from bark_kedro.pipelines.evaluate import nodes
from bark_kedro.pipelines.evaluate.params import EvaluateParams
from bark_kedro.training import StageDataConfig


def test_teacher_forced_metrics_use_the_saved_layouts(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}

    def fake_stage_metrics(models, tables, data_configs, tokens_per_batch, seed):
        seen.update(data_configs)
        return {}

    monkeypatch.setattr(nodes, "stage_metrics", fake_stage_metrics)
    layouts = {"semantic": {"history_drop_prob": 0.25}, "coarse": {"semantic_window": 24},
               "fine": {"window": 16, "n_codes_given": 1}}
    nodes.teacher_forced_metrics(None, None, None, None, None, None, layouts["semantic"],
                                 layouts["coarse"], layouts["fine"], EvaluateParams())
    assert seen == {stage: StageDataConfig(**layout) for stage, layout in layouts.items()}


def test_synthesis_fits_windows_with_the_saved_layouts(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}

    def fake_make_synthesizer(*args, coarse_layout, fine_layout, **kwargs):
        seen.update(coarse=coarse_layout, fine=fine_layout)
        raise RuntimeError("stop here")

    monkeypatch.setattr(nodes, "make_synthesizer", fake_make_synthesizer)
    monkeypatch.setattr(nodes, "text_tokenizer_from_dict", lambda d: d)
    generation = SimpleNamespace(config=None, fit_windows_to_models=True, bfloat16=False)
    with pytest.raises(RuntimeError, match="stop here"):
        nodes.synthesize_heldout_utterances(None, None, None, {"semantic_window": 24},
                                            {"window": 16}, {}, None, None, None, None,
                                            generation, EvaluateParams())
    assert seen == {"coarse": {"semantic_window": 24}, "fine": {"window": 16}}


def test_evaluate_reads_no_training_parameters() -> None:
    inputs = evaluate.create_pipeline().inputs()
    assert not {name for name in inputs if name.startswith("params:train_")}
    assert {f"{stage}_model_data_layout" for stage in ("semantic", "coarse", "fine")} <= inputs
