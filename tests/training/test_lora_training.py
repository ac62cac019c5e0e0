"""LoRA fine-tuning through the training loop: only adapters train and are checkpointed,
with the base digest; resuming or reloading on another base fails; the result is merged."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bark_kedro.models.lora import LoRAConfig, base_digest, has_adapters
from bark_kedro.training import (
    ModelInitConfig,
    OptimizerConfig,
    StageDataConfig,
    TrainConfig,
    build_stage_examples,
    build_stage_model,
    count_params,
    load_lora_run,
    lora_model,
    stage_vocab,
    train,
)
from bark_kedro.training.checkpoints import TrainCheckpoints
from bark_kedro.training.state import split_model
from tests.training.synthetic import token_tables

VOCAB = stage_vocab(40, 64, 1024)
TABLES = token_tables(VOCAB, n_utterances=40, n_speakers=2)
DATA = StageDataConfig(max_buckets=2)
BASE = ModelInitConfig(preset="test")
LORA = ModelInitConfig(preset="test", finetune="lora",
                       lora={"rank": 4, "alpha": 8.0, "dropout": 0.1, "train_layer_norms": True})


def _examples(model):
    return [build_stage_examples("coarse", *TABLES, VOCAB, DATA, model.config, split, 0)[0]
            for split in ("train", "validation")]


def _config(steps):
    return TrainConfig(stage="coarse", steps=steps, tokens_per_batch=1024, eval_every=steps,
                       checkpoint_every=3, progress=False,
                       optimizer=OptimizerConfig(learning_rate=2e-2, warmup_steps=0))


def test_lora_model_trains_only_adapters_and_the_chosen_extras():
    model = build_stage_model("coarse", VOCAB, LORA, seed=0)
    trainable = split_model(model)[1].trainable
    assert trainable and all(".lora." in name or ".ln_" in name or name.startswith("ln_f")
                             for name in trainable)
    assert any(name.endswith("lora.lora_a") for name in trainable)
    assert not any(name.endswith("kernel") or name.startswith(("wte", "wpe", "lm_head"))
                   for name in trainable)
    counts = count_params(model)
    assert counts["trainable"] == sum(v.size for v in trainable.values())
    assert counts["trainable"] < 0.2 * counts["total"]


@pytest.mark.slow
def test_lora_run_checkpoints_adapters_with_the_base_digest_and_reloads_only_on_it(tmp_path):
    model = build_stage_model("coarse", VOCAB, LORA, seed=0)
    base = build_stage_model("coarse", VOCAB, BASE, seed=0)
    train_ex, val_ex = _examples(model)
    before = split_model(model)[1]
    result = train(model, train_ex, val_ex, _config(6), DATA, tmp_path, lora=LORA.lora)

    summary = result.summary
    assert summary["final_val_loss"] < summary["initial_val_loss"]
    assert summary["base_digest"] == base_digest(base)
    assert LoRAConfig.from_dict(summary["lora"]) == LORA.lora
    assert summary["params"]["trainable"] == sum(v.size for v in before.trainable.values())
    assert not has_adapters(result.model)  # merged: a plain model of the base's shapes
    merged = split_model(result.model)[1]
    assert {**merged.trainable, **merged.frozen}.keys() == {
        **split_model(base)[1].trainable, **split_model(base)[1].frozen}.keys()

    checkpoints = TrainCheckpoints(tmp_path)
    stored = checkpoints.read_params()
    assert set(stored) == {"trainable"} and set(stored["trainable"]) == set(before.trainable)
    assert checkpoints.read_meta()["base_digest"] == base_digest(base)
    checkpoints.close()

    reloaded = load_lora_run(tmp_path, base)
    idx = jnp.asarray(np.random.default_rng(0).integers(0, VOCAB.coarse_vocab_size, (2, 16)))
    np.testing.assert_allclose(np.asarray(reloaded(idx)), np.asarray(result.model(idx)),
                               atol=1e-5)
    assert not np.allclose(np.asarray(base(idx)), np.asarray(result.model(idx)), atol=1e-4)

    other = build_stage_model("coarse", VOCAB, BASE, seed=1)
    with pytest.raises(ValueError, match="trained on the base weights with digest"):
        load_lora_run(tmp_path, other)
    with pytest.raises(ValueError, match="LoRA adapters only resume on the base checkpoint"):
        train(lora_model(other, LORA.lora), train_ex, val_ex, _config(9), DATA, tmp_path,
              lora=LORA.lora)
    with pytest.raises(ValueError, match="is not a LoRA run"):
        plain_dir = tmp_path / "plain"
        train(build_stage_model("coarse", VOCAB, BASE, seed=0), train_ex, val_ex, _config(1),
              DATA, plain_dir)
        load_lora_run(plain_dir, base)

    # resumed on its own base, the run continues from its checkpoint
    resumed = train(build_stage_model("coarse", VOCAB, LORA, seed=0), train_ex, val_ex,
                    _config(9), DATA, tmp_path, lora=LORA.lora)
    assert resumed.summary["resumed_from_step"] == 6 and resumed.summary["steps"] == 9
    assert jax.tree.leaves(resumed.model)  # a model came back
