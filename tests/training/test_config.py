"""Run configs validate their fields and name the bad one."""

from __future__ import annotations

import pytest

from bark_kedro.training import (
    MeshConfig,
    ModelInitConfig,
    OptimizerConfig,
    StageDataConfig,
    TrainConfig,
)


@pytest.mark.parametrize(("make", "match"), [
    (lambda: OptimizerConfig(learning_rate=0), "OptimizerConfig.learning_rate"),
    (lambda: OptimizerConfig(learning_rate=1e-3, min_learning_rate=1e-2),
     "OptimizerConfig.min_learning_rate"),
    (lambda: OptimizerConfig(warmup_steps=-1), "OptimizerConfig.warmup_steps"),
    (lambda: OptimizerConfig(b2=1.5), "OptimizerConfig.b2"),
    (lambda: OptimizerConfig(accumulation_steps=0), "OptimizerConfig.accumulation_steps"),
    (lambda: MeshConfig(data=0), "MeshConfig.data"),
    (lambda: MeshConfig(fsdp=0), "MeshConfig.fsdp"),
    (lambda: StageDataConfig(history_drop_prob=2), "StageDataConfig.history_drop_prob"),
    (lambda: StageDataConfig(codebooks="some"), "StageDataConfig.codebooks"),
    (lambda: StageDataConfig(window=1), "StageDataConfig.window"),
    (lambda: StageDataConfig(truncate_text="yes"), "StageDataConfig.truncate_text"),
    (lambda: ModelInitConfig(preset="huge"), "ModelInitConfig.preset"),
    (lambda: ModelInitConfig(init_from="hub"), "ModelInitConfig.init_from"),
    (lambda: ModelInitConfig(init_from="suno"), "ModelInitConfig.checkpoint"),
    (lambda: ModelInitConfig(checkpoint="x.pt"), "ModelInitConfig.checkpoint"),
    (lambda: ModelInitConfig(freeze_layers=-2), "ModelInitConfig.freeze_layers"),
    (lambda: ModelInitConfig(finetune="adapters"), "ModelInitConfig.finetune"),
    (lambda: ModelInitConfig(finetune="freeze"), "ModelInitConfig.freeze_layers must be >= 0"),
    (lambda: ModelInitConfig(freeze_layers=2), "ModelInitConfig.freeze_layers needs finetune"),
    (lambda: ModelInitConfig(lora={"rank": 4}), "ModelInitConfig.lora needs finetune: lora"),
    (lambda: ModelInitConfig(finetune="lora", lora={"rank": 0}), "LoRAConfig.rank"),
    (lambda: ModelInitConfig(finetune="lora", lora={"ranks": 4}), "unknown keys in LoRAConfig"),
    (lambda: TrainConfig(stage="vocoder"), "TrainConfig.stage"),
    (lambda: TrainConfig(steps=0), "TrainConfig.steps"),
    (lambda: TrainConfig(eval_every=0), "TrainConfig.eval_every"),
    (lambda: TrainConfig(optimizer={"learning_rate": 1}), "TrainConfig.optimizer"),
])
def test_bad_values_name_the_field(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_learning_rate_floor_and_mesh_shape():
    assert OptimizerConfig(learning_rate=1e-3).end_learning_rate == pytest.approx(1e-4)
    assert OptimizerConfig(learning_rate=1e-3, min_learning_rate=0.0).end_learning_rate == 0.0
    assert MeshConfig().shape(8) == (8, 1)
    assert MeshConfig(fsdp=2).shape(8) == (4, 2)
    assert MeshConfig(data=1).shape(8) == (1, 1)
    with pytest.raises(ValueError, match="fsdp=3 does not divide"):
        MeshConfig(fsdp=3).shape(8)
    with pytest.raises(ValueError, match="needs 16 devices"):
        MeshConfig(data=8, fsdp=2).shape(8)


def test_layout_sizes_fit_the_block():
    bark = StageDataConfig().resolved(1024)
    assert (bark.semantic_window, bark.max_coarse_history, bark.sliding_window_len,
            bark.window) == (256, 630, 60, 1024)
    for block in (128, 256, 512):
        data = StageDataConfig().resolved(block)
        assert data.semantic_window + data.max_coarse_history + data.sliding_window_len <= block
        assert data.window == block
    assert StageDataConfig(window=64).resolved(256).window == 64
    assert TrainConfig().replace(steps=5).steps == 5
    assert TrainConfig().to_dict()["optimizer"]["learning_rate"] == 3e-4


def test_lora_finetune_gets_the_adapter_defaults_or_the_given_ones():
    from bark_kedro.models.lora import LoRAConfig

    assert ModelInitConfig(finetune="lora").lora == LoRAConfig()
    init = ModelInitConfig(finetune="lora", lora={"rank": 4, "target_modules": ["c_attn"]})
    assert init.lora == LoRAConfig(rank=4, target_modules=("c_attn",))
    assert ModelInitConfig().lora is None
