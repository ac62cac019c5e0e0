"""Nodes of the synthesize pipeline (and the synthesizer both it and evaluate use)."""

from __future__ import annotations

from typing import Any

import numpy as np

from bark_kedro.generation import Synthesizer
from bark_kedro.generation.windows import fit_windows
from bark_kedro.pipelines.synthesize.params import GenerationParams, SynthesizeParams
from bark_kedro.tokenizers.codec import CodecTokenizer
from bark_kedro.tokenizers.text import text_tokenizer_from_dict


def make_synthesizer(
    semantic_model: Any,
    coarse_model: Any,
    fine_model: Any,
    text_tokenizer: dict[str, Any],
    codec_model: CodecTokenizer,
    generation: GenerationParams,
) -> Synthesizer:
    """A :class:`Synthesizer` over the catalog's models and tokenizer artifacts."""
    config = generation.config
    if generation.fit_windows_to_models:
        config = fit_windows(config, coarse_model.config, fine_model.config)
    weights_dtype = None
    if generation.bfloat16:
        import jax.numpy as jnp

        weights_dtype = jnp.bfloat16
    return Synthesizer(semantic_model, coarse_model, fine_model,
                       text_tokenizer_from_dict(text_tokenizer), codec_model, config,
                       weights_dtype=weights_dtype)


def synthesize_text(
    semantic_model: Any,
    coarse_model: Any,
    fine_model: Any,
    text_tokenizer: dict[str, Any],
    codec_model: CodecTokenizer,
    generation: GenerationParams,
    params: SynthesizeParams,
) -> np.ndarray:
    """The 24 kHz waveform of ``params.text`` (sentence by sentence, optional voice prompt)."""
    synthesizer = make_synthesizer(semantic_model, coarse_model, fine_model, text_tokenizer,
                                   codec_model, generation)
    audio = synthesizer.synthesize(params.text, voice=params.voice_prompt, seed=params.seed)
    if audio.size == 0:
        raise ValueError(f"the models produced no audio for synthesize.text={params.text!r} "
                         f"(the semantic stage stopped at once); try another seed or text")
    return audio
