"""Synthetic but learnable token tables in the tokenize pipeline's format (contracts.md).

Each text id stands for a fixed run of 2-3 copies of one semantic id; coarse frames
follow the semantic ids at the codec rate (codebook 0 a fixed function of the semantic
id, codebook 1 of codebook 0), and every further codebook is a fixed permutation of the
previous one. So each stage's targets are a function of its inputs a model can learn.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bark_kedro.models import BarkVocab

SEMANTIC_RATE, CODEC_RATE = 49.9, 75.0


def token_tables(
    vocab: BarkVocab,
    n_utterances: int = 40,
    n_speakers: int = 3,
    text_len: tuple[int, int] = (4, 12),
    seed: int = 0,
    val_every: int = 5,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``(text_tokens, semantic_tokens, codec_tokens)``; every ``val_every``-th utterance
    is in the validation split."""
    rules = np.random.default_rng(12345)  # the "language": the same for every seed
    sem_of_text = rules.integers(0, vocab.semantic_vocab_size, vocab.text_vocab_size)
    repeats = 2 + rules.integers(0, 2, vocab.text_vocab_size)
    code_of_sem = rules.integers(0, vocab.codebook_size, vocab.semantic_vocab_size)
    perms = [rules.permutation(vocab.codebook_size) for _ in range(vocab.n_fine_codebooks)]
    rng = np.random.default_rng(seed)
    text_rows, sem_rows, codec_rows = [], [], []
    for i in range(n_utterances):
        uid, speaker = f"utt{i:04d}", f"spk{i % n_speakers}"
        split = "validation" if i % val_every == val_every - 1 else "train"
        text = rng.integers(0, vocab.text_vocab_size, rng.integers(*text_len))
        sem = np.repeat(sem_of_text[text], repeats[text])
        n_frames = int(len(sem) * CODEC_RATE / SEMANTIC_RATE)
        frame_sem = sem[np.minimum((np.arange(n_frames) * SEMANTIC_RATE / CODEC_RATE).astype(int),
                                   len(sem) - 1)]
        codes = np.empty((vocab.n_fine_codebooks, n_frames), np.int16)
        codes[0] = code_of_sem[frame_sem]
        for k in range(1, vocab.n_fine_codebooks):
            codes[k] = perms[k][codes[k - 1]]
        base = {"utterance_id": uid, "speaker": speaker, "split": split}
        duration = len(sem) / SEMANTIC_RATE
        text_rows.append(base | {"text": " ".join(map(str, text)),
                                 "text_ids": text.astype(np.int32)})
        sem_rows.append(base | {"duration_s": duration, "semantic_ids": sem.astype(np.int32)})
        codec_rows.append(base | {"duration_s": duration, "n_codebooks": codes.shape[0],
                                  "n_frames": n_frames, "codes": codes.ravel()})
    return pd.DataFrame(text_rows), pd.DataFrame(sem_rows), pd.DataFrame(codec_rows)
