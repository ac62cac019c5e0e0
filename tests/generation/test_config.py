"""GenerationConfig: Bark's defaults, validation naming the field, fit to the models."""

from __future__ import annotations

import pytest

from bark_kedro.generation import GenerationConfig
from bark_kedro.models import coarse_config, fine_config, semantic_config


def test_defaults_are_barks_and_fit_the_bark_models():
    config = GenerationConfig()
    assert (config.max_coarse_history, config.sliding_window_len, config.semantic_window) == (
        630, 60, 256)
    assert config.semantic_token_limit(semantic_config("bark")) == 768
    assert config.semantic_to_coarse_ratio(2) == pytest.approx(75 / 49.9 * 2)
    config.check_models(semantic_config("bark"), coarse_config("bark"), fine_config("bark"))
    with pytest.raises(ValueError, match="exceeds the coarse model's block_size 256"):
        config.check_models(coarse=coarse_config("tiny"))


@pytest.mark.parametrize(("changes", "match"), [
    (dict(semantic_temperature=0), "semantic_temperature must be a number > 0"),
    (dict(coarse_temperature=None), "coarse_temperature must be a number > 0"),
    (dict(top_k=0), "top_k must be None or an int >= 1"),
    (dict(top_p=1.5), "top_p must be None or in"),
    (dict(min_eos_p=-0.1), "min_eos_p must be None or in"),
    (dict(allow_early_stop="yes"), "allow_early_stop must be a bool"),
    (dict(max_semantic_tokens=0), "max_semantic_tokens must be None or an int >= 1"),
    (dict(sliding_window_len=0), "sliding_window_len must be an int >= 1"),
    (dict(fine_window=63), "fine_window must be even"),
    (dict(semantic_rate_hz=float("nan")), "semantic_rate_hz must be a number > 0"),
    (dict(sentence_pause_s=-1), "sentence_pause_s must be a number >= 0"),
])
def test_bad_values_name_the_field(changes, match):
    with pytest.raises(ValueError, match=f"GenerationConfig.{match}"):
        GenerationConfig(**changes)
    GenerationConfig(fine_temperature=None, top_k=1, top_p=0.9, min_eos_p=None)
