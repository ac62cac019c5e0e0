import io

import numpy as np
import pandas as pd
import pytest

from bark_kedro.tokenizers.tables import (
    CODEC_TOKEN_COLUMNS,
    TOKENIZER_STEPS,
    check_utterances,
    codec_tokens_table,
    codes_column,
    codes_matrix,
    rejected_table,
    semantic_tokens_table,
    text_tokens_table,
)

BASE = {"utterance_id": "a", "speaker": "s", "split": "train"}


def parquet_round_trip(table: pd.DataFrame) -> pd.DataFrame:
    buffer = io.BytesIO()
    table.to_parquet(buffer)
    buffer.seek(0)
    return pd.read_parquet(buffer)


def test_codes_survive_parquet_row_major():
    rng = np.random.default_rng(0)
    matrices = [rng.integers(0, 1024, size=(8, n)) for n in (1, 5, 75)]
    rows = [{**BASE, "utterance_id": f"u{i}", "duration_s": m.shape[1] / 75, "codes": m}
            for i, m in enumerate(matrices)]
    table = parquet_round_trip(codec_tokens_table(rows))
    assert list(table.columns) == CODEC_TOKEN_COLUMNS
    assert table.n_frames.tolist() == [1, 5, 75] and set(table.n_codebooks) == {8}
    for (_, row), m in zip(table.iterrows(), matrices, strict=True):
        assert row.codes.dtype == np.int16
        np.testing.assert_array_equal(row.codes, m.reshape(-1))  # row-major flattening
        np.testing.assert_array_equal(codes_matrix(row), m)
    row = next(table.itertuples())
    np.testing.assert_array_equal(codes_matrix(row), matrices[0])  # itertuples rows too
    assert codes_matrix(dict(row._asdict())).shape == (8, 1)


def test_codes_helpers_name_bad_input():
    with pytest.raises(ValueError, match=r"codes\[1\] must be \(n_codebooks, n_frames\)"):
        codes_column([np.zeros((2, 2)), np.zeros(4)])
    with pytest.raises(ValueError, match="outside int16"):
        codes_column([np.full((1, 2), 40_000)])
    with pytest.raises(ValueError, match="'x'.*do not fill"):
        codes_matrix({"utterance_id": "x", "codes": np.zeros(5), "n_codebooks": 2,
                      "n_frames": 3})


def test_id_columns_keep_their_dtypes_through_parquet():
    text = parquet_round_trip(text_tokens_table([{**BASE, "text": "hi", "text_ids": [3, 4]}]))
    semantic = parquet_round_trip(semantic_tokens_table(
        [{**BASE, "duration_s": 0.1, "semantic_ids": np.array([1, 2, 3], np.int64)}]))
    assert text.text_ids[0].dtype == np.int32 and text.text_ids[0].tolist() == [3, 4]
    assert semantic.semantic_ids[0].dtype == np.int32
    empty = parquet_round_trip(rejected_table([]))
    assert list(empty.columns) == ["utterance_id", "stage", "reason"] and empty.empty


def test_rejected_rows_name_one_of_the_tokenizer_steps():
    rows = [{"utterance_id": "a", "stage": step, "reason": "r"} for step in TOKENIZER_STEPS]
    assert list(rejected_table(rows).stage) == ["text", "semantic", "codec"]
    with pytest.raises(ValueError, match=r"unknown tokenizer step\(s\) \['coarse'\]"):
        rejected_table([{"utterance_id": "a", "stage": "coarse", "reason": "r"}])


def test_check_utterances_names_the_problem():
    good = pd.DataFrame([{"utterance_id": "a", "speaker": "s", "split": "train", "text": "t",
                          "duration_s": 1.0, "audio_16k_path": "a", "audio_24k_path": "b"}])
    check_utterances(good)
    with pytest.raises(ValueError, match="lacks column"):
        check_utterances(good.drop(columns="audio_24k_path"))
    with pytest.raises(ValueError, match="repeats utterance ids"):
        check_utterances(pd.concat([good, good]))
    with pytest.raises(ValueError, match="unknown split"):
        check_utterances(good.assign(split="test"))
