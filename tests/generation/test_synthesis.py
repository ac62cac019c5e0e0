"""Synthesizer: sentence splitting, history chaining, seeds, voices, checks."""

from __future__ import annotations

import logging

import jax
import numpy as np
import pytest

from bark_kedro.generation.sampling import row_keys, step_keys
from bark_kedro.generation.synthesis import Synthesizer, fit_to_context, split_sentences
from bark_kedro.generation.voice import VoicePrompt, save_voice_prompt
from bark_kedro.models import BarkVocab, build_model, coarse_config
from bark_kedro.tokenizers.text import VocabTokenizer
from tests.generation.reference import TINY_CONFIG, TINY_VOCAB, tiny_models

TEXT = "Hello world. This is a test, of the synthesizer, with a clause! Ok?  Bye."


class FakeCodec:
    """Decodes codes to a waveform that depends on them: 320 samples per frame."""

    weights_source = "local"

    def decode(self, codes):
        codes = np.asarray(codes)
        assert codes.shape[0] == 8
        return np.repeat(codes.mean(axis=0) / 1024.0, 320).astype(np.float32)


@pytest.fixture(scope="module")
def synthesizer():
    tokenizer = VocabTokenizer.build("chars", [TEXT], lowercase=True)
    assert tokenizer.text_vocab_size <= TINY_VOCAB.text_vocab_size
    m = tiny_models()
    return Synthesizer(m["semantic"], m["coarse"], m["fine"], tokenizer, FakeCodec(),
                       TINY_CONFIG.replace(sentence_pause_s=0.01))


def test_split_sentences_and_fit_to_context():
    assert split_sentences("  One.  Two!\nThree? four… 五。六 ") == [
        "One.", "Two!", "Three?", "four…", "五。", "六"]
    assert split_sentences("no end") == ["no end"] and split_sentences(" \n") == []
    pieces = fit_to_context("aaaa bbbb, cccc dddd eeee, f", len, 12)
    assert pieces == ["aaaa bbbb,", "cccc dddd", "eeee, f"]
    assert all(len(p) <= 12 for p in pieces)
    assert fit_to_context("short", len, 12) == ["short"]
    assert fit_to_context("averyveryverylongword x", len, 5) == ["averyveryverylongword", "x"]


@pytest.mark.slow
def test_long_text_chains_sentences_through_their_history(synthesizer):
    pieces = synthesizer.split_text(TEXT)
    assert pieces == ["Hello world.", "This is a test,", "of the synthesizer,", "with a clause!",
                      "Ok?", "Bye."]  # the text block holds 32 characters
    audio = synthesizer.synthesize(TEXT, seed=3, progress=False)
    keys = row_keys(jax.random.key(3), 1)
    history, parts = None, []
    for r, piece in enumerate(pieces):  # the same thing, sentence by sentence
        (prompt,) = synthesizer.generate_tokens([piece], [history], step_keys(keys, r))
        if prompt is not None:
            history = prompt
            parts.append(synthesizer.decode(prompt.fine))
    pause = np.zeros(240, np.float32)
    want = np.concatenate([x for p in parts for x in (p, pause)][:-1])
    np.testing.assert_array_equal(audio, want)
    assert len(parts) >= 2


@pytest.mark.slow
def test_seeds_batches_and_voices(synthesizer, tmp_path):
    texts = ["Hello world.", "Ok? Bye. This is it."]
    batch = synthesizer.synthesize(texts, seed=1, progress=False)
    again = synthesizer.synthesize(texts, seed=1, progress=False)
    assert len(batch) == 2 and all(a.dtype == np.float32 and a.ndim == 1 for a in batch)
    for a, b in zip(batch, again, strict=True):
        np.testing.assert_array_equal(a, b)
    alone = synthesizer.synthesize(texts[0], seed=1, progress=False)  # text 0's key is the same
    np.testing.assert_array_equal(alone, batch[0])
    other = synthesizer.synthesize(texts[0], seed=2, progress=False)
    assert len(other) != len(alone) or not np.array_equal(other, alone)
    rng = np.random.default_rng(0)
    fine = rng.integers(0, 1024, (8, 60))
    voice = VoicePrompt(rng.integers(0, 60, 40), fine[:2], fine)
    path = save_voice_prompt(tmp_path / "v.npz", voice)
    with_voice = synthesizer.synthesize(texts[0], voice=voice, seed=1, progress=False)
    np.testing.assert_array_equal(with_voice, synthesizer.synthesize(texts[0], voice=path, seed=1,
                                                                     progress=False))
    assert len(with_voice) != len(alone) or not np.array_equal(with_voice, alone)
    with pytest.raises(ValueError, match="semantic_prompt ids must be < 60"):
        synthesizer.synthesize(texts[0], voice=VoicePrompt(np.array([99]), fine[:2], fine))
    with pytest.raises(ValueError, match="no text to synthesize"):
        synthesizer.synthesize("   ")


def test_models_and_tokenizers_must_agree(synthesizer, caplog):
    m = synthesizer.models
    other = BarkVocab.build(text_vocab_size=30, semantic_vocab_size=61, codebook_size=1024)
    coarse = build_model(coarse_config("test", other), seed=0)
    with pytest.raises(ValueError, match="disagree on semantic_vocab_size: 60 vs 61"):
        Synthesizer(m["semantic"], coarse, m["fine"], synthesizer.text_tokenizer, FakeCodec(),
                    TINY_CONFIG)
    with pytest.raises(TypeError, match="encode_raw"):
        Synthesizer(m["semantic"], m["coarse"], m["fine"], object(), FakeCodec(), TINY_CONFIG)
    with pytest.raises(ValueError, match="expected the coarse GPT"):
        Synthesizer(m["semantic"], m["semantic"], m["fine"], synthesizer.text_tokenizer,
                    FakeCodec(), TINY_CONFIG)
    big = VocabTokenizer("chars", [chr(0x4E00 + i) for i in range(40)])
    with pytest.raises(ValueError, match="text tokenizer has 42 ids"):
        Synthesizer(m["semantic"], m["coarse"], m["fine"], big, FakeCodec(), TINY_CONFIG)
    codec = FakeCodec()
    codec.weights_source = "random"
    with caplog.at_level(logging.WARNING):
        Synthesizer(m["semantic"], m["coarse"], m["fine"], synthesizer.text_tokenizer, codec,
                    TINY_CONFIG)
    assert "RANDOM weights" in caplog.text
