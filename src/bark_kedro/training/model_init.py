"""Build a stage's model from scratch or an official checkpoint; freeze its lower layers
or everything but LoRA adapters.

Frozen parameters become :class:`FrozenParam` (a subclass of ``nnx.Param``): they are
still saved with the model, but ``nnx.split(model, FrozenParam, nnx.Param, ...)`` keeps
them out of the trainable state, so they get no gradient and no optimizer state.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
from flax import nnx

from bark_kedro.models import (
    BARK_VOCAB,
    GPT,
    BarkVocab,
    FineGPT,
    FineGPTConfig,
    abstract_model,
    build_model,
    coarse_config,
    fine_config,
    semantic_config,
)
from bark_kedro.models.layout import STAGES
from bark_kedro.models.lora import LoRAConfig, add_lora, trainable_filter
from bark_kedro.training.config import ModelInitConfig

Model = GPT | FineGPT
CONFIG_BUILDERS = {"semantic": semantic_config, "coarse": coarse_config, "fine": fine_config}
LOADED_OVERRIDES = ("dtype", "dropout")


class FrozenParam(nnx.Param):
    """A parameter that training leaves unchanged."""


def model_stage(model: Model) -> str:
    """"semantic", "coarse" or "fine"."""
    return "fine" if isinstance(model.config, FineGPTConfig) else model.config.stage


def _expected_vocab_sizes(stage: str, vocab: BarkVocab) -> dict[str, tuple[int, str]]:
    if stage == "semantic":
        return {
            "input_vocab_size": (vocab.semantic_input_vocab_size, "semantic_input_vocab_size"),
            "output_vocab_size": (vocab.semantic_output_vocab_size, "semantic_output_vocab_size"),
        }
    name = "coarse_vocab_size" if stage == "coarse" else "fine_vocab_size"
    size = getattr(vocab, name)
    return {"input_vocab_size": (size, name), "output_vocab_size": (size, name)}


def check_stage_model(model: Model, stage: str, vocab: BarkVocab, source: str = "model") -> None:
    """Fail, naming the problem, unless ``model`` is a ``stage`` model for ``vocab``."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    found = model_stage(model)
    if found != stage:
        raise ValueError(f"{source} is a {found} model, the {stage} stage needs a {stage} model")
    config = model.config
    for key, (size, vocab_name) in _expected_vocab_sizes(stage, vocab).items():
        if getattr(config, key) != size:
            raise ValueError(
                f"{source}: {key}={getattr(config, key)} does not match the vocabulary's "
                f"{vocab_name}={size}; the checkpoint was trained with another token layout"
            )
    if config.vocab != vocab:
        diff = sorted(
            k for k, v in vocab.to_dict().items() if config.vocab.to_dict().get(k) != v
        )
        raise ValueError(f"{source}: its vocabulary differs from the data's in {diff}")


def _loaded_overrides(init: ModelInitConfig) -> dict[str, Any]:
    bad = sorted(set(init.overrides) - set(LOADED_OVERRIDES))
    if bad:
        raise ValueError(
            f"ModelInitConfig.overrides {bad} cannot change a model loaded from "
            f"{init.init_from!r}; only {list(LOADED_OVERRIDES)} can"
        )
    return dict(init.overrides)


def _load(stage: str, vocab: BarkVocab, init: ModelInitConfig) -> Model:
    from bark_kedro.models import (
        load_model,
        load_suno_checkpoint,
        load_transformers_bark,
        load_transformers_model,
    )

    path = Path(init.checkpoint)
    if not path.exists():
        raise FileNotFoundError(f"ModelInitConfig.checkpoint {str(path)!r} does not exist")
    overrides = _loaded_overrides(init)
    if init.init_from == "suno":
        model = load_suno_checkpoint(path, stage=stage, vocab=vocab)[0]
    elif init.init_from == "orbax":
        model = load_model(path)[0]
    else:
        config_file = path / "config.json"
        if not config_file.is_file():
            raise FileNotFoundError(f"{path} is not a transformers directory (no config.json)")
        if json.loads(config_file.read_text()).get("model_type") == "bark":
            model = load_transformers_bark(path, vocab=vocab)[stage][0]
        else:
            model = load_transformers_model(path, vocab=vocab)[0]
    return _with_config_changes(model, overrides)


def _with_config_changes(model: Model, changes: dict[str, Any]) -> Model:
    """The same parameters in a model whose config has ``changes`` (dtype, dropout)."""
    if not changes:
        return model
    graphdef, _ = nnx.split(abstract_model(model.config.replace(**changes)))
    return nnx.merge(graphdef, nnx.state(model))


def freeze_layers(model: Model, n_blocks: int) -> Model:
    """Freeze the embeddings and the first ``n_blocks`` blocks of ``model`` (in place)."""
    if not 0 <= n_blocks <= model.config.n_layer:
        raise ValueError(
            f"freeze_layers={n_blocks} must lie in [-1, n_layer={model.config.n_layer}]"
        )
    embeddings = ["wtes", "wpe"] if isinstance(model, FineGPT) else ["wte", "wpe"]
    for name in embeddings:
        node = getattr(model, name)
        if isinstance(node, nnx.Param):
            setattr(model, name, FrozenParam(node[...]))
        else:
            _freeze_module(node)
    for block in list(model.h)[:n_blocks]:
        _freeze_module(block)
    return model


def lora_model(model: Model, config: LoRAConfig) -> Model:
    """A copy of ``model`` with adapters (see :func:`~bark_kedro.models.lora.add_lora`) in
    which every parameter but the adapters (and the LayerNorms / heads the config trains)
    is frozen."""
    adapted = add_lora(model, config)
    _freeze_module(adapted, keep=nnx.filterlib.to_predicate(trainable_filter(config)))
    return adapted


def _freeze_module(module: nnx.Module, keep=None) -> None:
    """Freeze every parameter of ``module`` except those ``keep(path, node)`` accepts."""
    for path, node in list(nnx.iter_graph(module)):
        if keep is not None and keep(path, node):
            continue
        if isinstance(node, nnx.Param) and not isinstance(node, FrozenParam):
            parent = module
            for key in path[:-1]:
                parent = parent[key] if isinstance(key, int) else getattr(parent, key)
            setattr(parent, path[-1], FrozenParam(node[...]))


def count_params(model: Model) -> dict[str, int]:
    """Numbers of trainable, frozen and all parameters."""
    frozen = nnx.state(model, FrozenParam)
    params = nnx.state(model, nnx.Param)
    n_frozen = sum(x.size for x in jax.tree.leaves(frozen))
    n_all = sum(x.size for x in jax.tree.leaves(params))
    return {"trainable": n_all - n_frozen, "frozen": n_frozen, "total": n_all}


def build_stage_model(stage: str, vocab: BarkVocab, init: ModelInitConfig, seed: int = 0) -> Model:
    """The ``stage`` model described by ``init`` (random weights from ``seed`` when from
    scratch), checked against ``vocab``, frozen as ``init.finetune`` says (``lora``: with
    adapters, only they train)."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    if init.init_from == "scratch":
        model = build_model(CONFIG_BUILDERS[stage](init.preset, vocab, **init.overrides), seed)
    else:
        model = _load(stage, vocab, init)
    check_stage_model(model, stage, vocab, source=init.checkpoint or f"{stage} model")
    if init.finetune == "freeze":
        freeze_layers(model, init.freeze_layers)
    elif init.finetune == "lora":
        model = lora_model(model, init.lora)
    return model


def stage_vocabulary(
    init: ModelInitConfig, text_vocab_size: int, semantic_vocab_size: int
) -> BarkVocab:
    """The token layout a stage trains with.

    From scratch: Bark's layout built around the tokenizers' vocabularies. From an official
    checkpoint (suno, transformers): Bark's own vocabulary, which the tokenizers must match.
    From one of the project's Orbax models: the vocabulary stored in its config.
    """
    if init.init_from == "scratch":
        return BarkVocab.build(text_vocab_size, semantic_vocab_size)
    if init.init_from == "orbax":
        from bark_kedro.models import load_config

        return load_config(init.checkpoint).vocab
    vocab = BARK_VOCAB
    if semantic_vocab_size != vocab.semantic_vocab_size:
        raise ValueError(
            f"fine-tuning an official {init.init_from!r} checkpoint needs Bark's "
            f"{vocab.semantic_vocab_size} semantic ids, but the semantic tokenizer has "
            f"{semantic_vocab_size} clusters (tokenize with a Bark-compatible quantizer)"
        )
    if text_vocab_size > vocab.text_vocab_size:
        raise ValueError(
            f"fine-tuning an official {init.init_from!r} checkpoint needs the 'bark' text "
            f"tokenizer ({vocab.text_vocab_size} ids), but the text tokenizer has "
            f"{text_vocab_size}"
        )
    return vocab
