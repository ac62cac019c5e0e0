"""The training loop on synthetic, learnable token tables: learning, metrics, frozen
layers, divergence, evaluation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bark_kedro.training import (
    ModelInitConfig,
    OptimizerConfig,
    StageDataConfig,
    TrainConfig,
    TrainingDiverged,
    build_stage_examples,
    build_stage_model,
    evaluate_examples,
    stage_vocab,
    train,
)
from bark_kedro.training.checkpoints import TrainCheckpoints
from bark_kedro.training.state import split_model
from tests.training.synthetic import token_tables

VOCAB = stage_vocab(40, 64, 1024)
TABLES = token_tables(VOCAB, n_utterances=50, n_speakers=3)
DATA = StageDataConfig(max_buckets=2)
TEST_MODEL = ModelInitConfig(preset="test")
FIRST_BLOCK_FROZEN = ModelInitConfig(preset="test", finetune="freeze", freeze_layers=1)


def _setup(stage, init=TEST_MODEL, seed=0):
    model = build_stage_model(stage, VOCAB, init, seed)
    examples = [build_stage_examples(stage, *TABLES, VOCAB, DATA, model.config, split, seed)[0]
                for split in ("train", "validation")]
    return model, *examples


def _config(stage, steps, **changes):
    settings = dict(stage=stage, steps=steps, tokens_per_batch=1024, eval_every=steps,
                    checkpoint_every=steps, progress=False,
                    optimizer=OptimizerConfig(learning_rate=1e-2, warmup_steps=3))
    return TrainConfig(**(settings | changes))


def _trainable(model) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in split_model(model)[1].trainable.items()}


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["semantic", "coarse", "fine"])
def test_each_stage_learns_its_synthetic_language(tmp_path, stage):
    model, train_ex, val_ex = _setup(stage)
    rows, evals = [], []
    result = train(model, train_ex, val_ex, _config(stage, 30, eval_every=15), DATA, tmp_path,
                   on_metrics=lambda s, m: rows.append((s, m)),
                   on_eval=lambda s, m: evals.append((s, m)))
    summary = result.summary
    assert [s for s, _ in rows] == list(range(1, 31))
    assert {"loss", "learning_rate", "grad_norm", "tokens_per_s"} <= rows[0][1].keys()
    assert rows[2][1]["learning_rate"] == pytest.approx(2 / 3 * 1e-2)  # warmup, 3rd update
    assert all(math.isfinite(m["grad_norm"]) and m["tokens_per_s"] > 0 for _, m in rows)
    assert [s for s, _ in evals] == [0, 15, 30]
    assert summary["final_val_loss"] < 0.85 * summary["initial_val_loss"]
    assert summary["final_val_top1"] > summary["initial_val_top1"] + 0.2
    assert summary["final_train_loss"] < rows[0][1]["loss"]
    assert summary["steps"] == 30 and summary["resumed_from_step"] is None
    assert 0 <= summary["padding_fraction"] <= 0.5
    assert summary["device"]["mesh_shape"] == "data=1,fsdp=1"
    assert TrainCheckpoints(tmp_path).latest_step() == 30


@pytest.mark.slow
def test_frozen_layers_stay_and_divergence_stops_the_run(tmp_path):
    model, train_ex, val_ex = _setup("coarse", FIRST_BLOCK_FROZEN)
    state = split_model(model)[1]
    frozen_before, trainable_before = state.frozen, state.trainable
    frozen_before = {k: np.asarray(v) for k, v in frozen_before.items()}
    trainable_before = {k: np.asarray(v) for k, v in trainable_before.items()}
    result = train(model, train_ex, val_ex, _config("coarse", 4, checkpoint_every=2), DATA,
                   tmp_path)
    state = split_model(result.model)[1]
    frozen_after, trainable_after = state.frozen, state.trainable
    assert frozen_before.keys() == frozen_after.keys() and "h.0.attn.c_attn.kernel" in frozen_after
    for name, value in frozen_before.items():
        np.testing.assert_array_equal(value, frozen_after[name], err_msg=name)
    assert all(not np.array_equal(trainable_before[k], trainable_after[k])
               for k in trainable_before if k.endswith("kernel"))
    assert result.summary["params"]["frozen"] > 0

    # the same run directory, resumed with an absurd learning rate: it must stop
    model, _, _ = _setup("coarse", FIRST_BLOCK_FROZEN)
    wild = _config("coarse", 12, checkpoint_every=1,
                   optimizer=OptimizerConfig(learning_rate=1e30, warmup_steps=0))
    with pytest.raises(TrainingDiverged, match=r"diverged at step \d+: loss=") as err:
        train(model, train_ex, val_ex, wild, DATA, tmp_path)
    failed_step = int(str(err.value).split("at step ")[1].split(":")[0])
    checkpoints = TrainCheckpoints(tmp_path)
    last = checkpoints.latest_step()
    assert 4 <= last < failed_step and f"step {last}" in str(err.value)
    assert checkpoints.read_meta()["step"] == last
    stored = checkpoints.read_params()
    assert all(np.isfinite(v).all() for v in stored["trainable"].values())


@pytest.mark.slow
def test_evaluate_examples_counts_every_loss_token():
    model, _, val_ex = _setup("fine")
    metrics = evaluate_examples(model, val_ex, "fine", tokens_per_batch=1024)
    assert metrics["n_tokens"] == sum(int(e.loss_mask.sum()) for e in val_ex)
    assert metrics["loss"] == pytest.approx(math.log(VOCAB.codebook_size), rel=0.05)
    assert 0 <= metrics["top1"] <= metrics["top10"] <= 1
    assert metrics["perplexity"] == pytest.approx(math.exp(metrics["loss"]))
    with pytest.raises(ValueError, match="is a fine model, the coarse stage"):
        evaluate_examples(model, val_ex, "coarse")
    half = build_stage_model("fine", VOCAB, ModelInitConfig(
        preset="test", overrides={"dtype": "bfloat16"}), seed=0)  # same weights, bf16 compute
    low = evaluate_examples(half, val_ex, "fine", tokens_per_batch=1024)
    assert low["loss"] == pytest.approx(metrics["loss"], rel=0.02) and low["loss"] != metrics["loss"]
