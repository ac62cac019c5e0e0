"""Nodes of the synthesize pipeline."""

from __future__ import annotations

from typing import Any

import numpy as np

from bark_kedro.generation import make_synthesizer
from bark_kedro.pipelines.synthesize.params import GenerationParams, SynthesizeParams
from bark_kedro.tokenizers.codec import Codec
from bark_kedro.tokenizers.text import text_tokenizer_from_dict


def synthesize_text(
    semantic_model: Any,
    coarse_model: Any,
    fine_model: Any,
    coarse_layout: dict[str, Any],
    fine_layout: dict[str, Any],
    text_tokenizer: dict[str, Any],
    codec_model: Codec,
    generation: GenerationParams,
    params: SynthesizeParams,
) -> np.ndarray:
    """The 24 kHz waveform of ``params.text`` (sentence by sentence, optional voice prompt),
    with windows fitted to the coarse and fine models' saved training data layouts."""
    synthesizer = make_synthesizer(
        semantic_model, coarse_model, fine_model, text_tokenizer_from_dict(text_tokenizer),
        codec_model, generation.config, fit_windows_to_models=generation.fit_windows_to_models,
        bfloat16=generation.bfloat16, coarse_layout=coarse_layout, fine_layout=fine_layout,
    )
    audio = synthesizer.synthesize(params.text, voice=params.voice_prompt, seed=params.seed)
    if audio.size == 0:
        raise ValueError(f"the models produced no audio for synthesize.text={params.text!r} "
                         f"(the semantic stage stopped at once); try another seed or text")
    return audio
