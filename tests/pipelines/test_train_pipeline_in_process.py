"""The training template's wiring, run in-process: a DataCatalog of memory datasets and
Kedro's SequentialRunner, the ``test`` preset, two steps (no Kedro session, no MLflow)."""

from __future__ import annotations

import string
from types import SimpleNamespace

import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from bark_kedro.models import load_metadata, load_model
from bark_kedro.models.lora import has_adapters
from bark_kedro.pipelines.train import create_stage_pipeline
from bark_kedro.pipelines.train.params import TrainStageParams
from bark_kedro.tokenizers.text import VocabTokenizer
from bark_kedro.training import stage_vocab
from tests.training.synthetic import token_tables

VOCAB = stage_vocab(40, 64, 1024)


def _catalog(stage: str, tmp_path, init: dict | None = None) -> DataCatalog:
    text, semantic, codec = token_tables(VOCAB)
    tokenizer = VocabTokenizer("chars", list(string.ascii_lowercase + string.digits + " ."))
    assert tokenizer.text_vocab_size == VOCAB.text_vocab_size
    params = TrainStageParams.model_validate({
        "init": init or {"preset": "test"},
        "train": {"steps": 2, "tokens_per_batch": 1024, "eval_every": 1,
                  "checkpoint_every": 2, "progress": False},
        "run_dir": str(tmp_path / "runs"),
    })
    inputs = {"text_tokens": text, "semantic_tokens": semantic, "codec_tokens": codec,
              "text_tokenizer": tokenizer.to_dict(),
              "semantic_tokenizer": SimpleNamespace(vocab_size=VOCAB.semantic_vocab_size),
              f"params:train_{stage}": params}
    return DataCatalog({name: MemoryDataset(value, copy_mode="assign")
                        for name, value in inputs.items()})


@pytest.mark.parametrize("stage", ["fine", pytest.param("semantic", marks=pytest.mark.slow)])
def test_the_template_trains_its_namespace_stage(stage, tmp_path):
    catalog, pipeline = _catalog(stage, tmp_path), create_stage_pipeline(stage)
    # no summary metrics beside the per-step series logged while training
    assert pipeline.outputs() == {f"{stage}_model", f"train_{stage}_summary",
                                  f"train_{stage}_tags"}
    SequentialRunner().run(pipeline, catalog)
    (model, metadata) = catalog.load(f"{stage}_model")
    summary = catalog.load(f"train_{stage}_summary")
    tags = catalog.load(f"train_{stage}_tags")
    assert summary["stage"] == stage and summary["steps"] == 2
    assert metadata["summary"] == summary and set(metadata) == {"summary", "data"}
    assert tags[f"train_{stage}.platform"] == "cpu"
    assert tags[f"train_{stage}.init_from"] == "scratch"
    # the data layout travels with the model, its window sizes resolved for the block size
    layout = metadata["data"]
    assert layout["window"] == model.config.block_size
    assert layout["semantic_window"] == max(1, round(256 * model.config.block_size / 1024))
    # and survives saving the model
    from bark_kedro.models import save_model

    save_model(tmp_path / "model", model, metadata=metadata)
    assert load_metadata(tmp_path / "model")["data"] == layout
    assert load_model(tmp_path / "model")[0].config == model.config


def test_a_lora_run_outputs_a_merged_model_and_records_its_adapters(tmp_path):
    init = {"preset": "test", "finetune": "lora", "lora": {"rank": 2, "target_modules": ["c_fc"]}}
    catalog, pipeline = _catalog("fine", tmp_path, init), create_stage_pipeline("fine")
    SequentialRunner().run(pipeline, catalog)
    (model, _), summary = catalog.load("fine_model"), catalog.load("train_fine_summary")
    tags = catalog.load("train_fine_tags")
    assert not has_adapters(model)
    assert tags["train_fine.finetune"] == "lora"
    assert tags["train_fine.base_digest"] == summary["base_digest"]
    assert summary["lora"]["rank"] == 2 and summary["lora"]["target_modules"] == ["c_fc"]
    params = summary["params"]
    assert 0 < params["trainable"] < params["total"] == params["trainable"] + params["frozen"]
