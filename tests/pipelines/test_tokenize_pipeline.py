"""The tokenize pipeline end to end through Kedro sessions: tables, rejects, MLflow, versions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro.config import OmegaConfigLoader
from kedro.io import Version

from bark_kedro.datasets.artifacts import CodecModelDataset, SemanticTokenizerDataset
from bark_kedro.pipelines.tracking import dataset_versions
from bark_kedro.tokenizers.corpus import tokenize_codec, tokenize_semantic
from bark_kedro.tokenizers.tables import (
    CODEC_TOKEN_COLUMNS,
    SEMANTIC_TOKEN_COLUMNS,
    TEXT_TOKEN_COLUMNS,
    codes_matrix,
)
from bark_kedro.tokenizers.text import text_tokenizer_from_dict
from tests.helpers.kedro_runs import (
    FAST_TOKENIZE,
    latest_run,
    run_pipeline,
)
from tests.helpers.kedro_runs import ingest_demo_corpus as ingest
from tests.helpers.tokenize_runs import TABLES, break_audio, digest, table, tokenize, versions

FAST = FAST_TOKENIZE


@pytest.mark.slow
def test_tokenize_tables_rejects_tracking_and_versions(project_copy: Path, caplog) -> None:
    first_utterances = ingest(project_copy, 4, "data/02_intermediate/a")
    utterances = pd.read_parquet(project_copy / "data/03_primary/utterances.parquet"
                                 / first_utterances / "utterances.parquet")
    expected_rejects = break_audio(project_copy, utterances)
    # a second, newer version of `utterances` (6 rows; its audio elsewhere: ingest overwrites)
    ingest(project_copy, 3, "data/02_intermediate/b")
    with caplog.at_level("WARNING"):
        tokenize(project_copy, load_versions={"utterances": first_utterances})
    assert "codec_weights=random" in caplog.text  # a random codec is flagged in the log

    run = latest_run(project_copy)
    assert run.info.status == "FINISHED"
    assert dataset_versions(run, "read")["utterances"] == first_utterances
    assert run.data.tags["codec_weights"] == "random"
    assert run.data.tags["semantic_features"] == "mfcc"
    assert run.data.tags["semantic_quantizer"] == "kmeans"
    assert run.data.tags["text_tokenizer"] == "chars"
    assert run.data.metrics["tokens/stages_codec_audio_s_per_s"] > 0
    assert run.data.metrics["tokens/n_utterances"] == len(utterances) == 8
    assert run.data.metrics["tokens/n_rejected"] == 2
    for name in (*TABLES, "text_tokenizer", "semantic_tokenizer", "codec_model"):
        assert name in dataset_versions(run, "written"), name

    rejects = table(project_copy, "rejected_tokenization")
    assert dict(zip(rejects.utterance_id, rejects.stage, strict=True)) == expected_rejects
    reasons = dict(zip(rejects.stage, rejects.reason, strict=True))
    assert reasons["semantic"].startswith("unreadable_audio")
    assert reasons["codec"].startswith("frame_mismatch")

    text, semantic, codec = (table(project_copy, n) for n in TABLES[:3])
    assert list(text.columns) == TEXT_TOKEN_COLUMNS
    assert list(semantic.columns) == SEMANTIC_TOKEN_COLUMNS
    assert list(codec.columns) == CODEC_TOKEN_COLUMNS
    assert text.utterance_id.tolist() == utterances.utterance_id.tolist()  # ingest order
    for name, frame in (("semantic", semantic), ("codec", codec)):
        kept = [u for u in utterances.utterance_id if expected_rejects.get(u) != name]
        assert frame.utterance_id.tolist() == kept
    assert set(text.split) == {"train", "validation"}

    artifacts = project_copy / "data/06_models"
    vocab = text_tokenizer_from_dict(json.loads(
        (artifacts / "text_tokenizer.json" / dataset_versions(run, "written")["text_tokenizer"]
         / "text_tokenizer.json").read_text()))
    for row in text.itertuples():
        assert row.text_ids.dtype == np.int32 and len(row.text_ids) > 0
        assert row.text_ids.max() < vocab.text_vocab_size
        assert row.text_ids.tolist() == vocab.encode_raw(row.text)

    durations = utterances.set_index("utterance_id").duration_s
    for row in semantic.itertuples():  # the two streams agree with the duration
        assert row.semantic_ids.dtype == np.int32
        assert abs(len(row.semantic_ids) - durations[row.utterance_id] * 50) <= 1
        assert 0 <= row.semantic_ids.min() and row.semantic_ids.max() < 8
    for _, row in codec.iterrows():
        codes = codes_matrix(row)
        assert codes.dtype == np.int16 and codes.shape == (8, row.n_frames)
        assert abs(row.n_frames - durations[row.utterance_id] * 75) <= 1
        assert 0 <= codes.min() and codes.max() < 1024

    # the saved artifacts reproduce the tables
    latest = Version(None, None)
    semantic_tok = SemanticTokenizerDataset(str(artifacts / "semantic_tokenizer"), latest).load()
    codec_tok = CodecModelDataset(str(artifacts / "codec_model.pt"), latest).load()
    assert codec_tok.weights_source == "random"
    semantic_again = tokenize_semantic(utterances, semantic_tok, progress=False)[0]
    codec_again = tokenize_codec(utterances, codec_tok, progress=False)[0]
    for a, b in zip(semantic.semantic_ids, semantic_again.semantic_ids, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(codec.codes, codec_again.codes, strict=True):
        np.testing.assert_array_equal(a, b)

    # a second run (latest utterances: 6 rows) writes new versions and leaves the first alone
    before = {name: digest(versions(project_copy, name)[0]) for name in TABLES}
    tokenize(project_copy)
    for name in TABLES:
        assert len(versions(project_copy, name)) == 2, name
        assert digest(versions(project_copy, name)[0]) == before[name], name
    assert len(table(project_copy, "text_tokens")) == 6
    assert len(table(project_copy, "text_tokens", 0)) == 8
    assert len(list((artifacts / "semantic_tokenizer").iterdir())) == 2
    assert len(list((artifacts / "codec_model.pt").iterdir())) == 2


@pytest.mark.slow
@pytest.mark.parametrize("key, value, message", [
    ("tokenize.semantic.n_clusters", -3, r"SemanticConfig\.n_clusters=-3: must be > 0"),
    ("tokenize.codec.weights", "best", r"CodecConfig\.weights='best': must be one of"),
    ("tokenize.text.kind", "words", r"TextConfig\.kind='words': must be one of"),
], ids=["n_clusters", "codec_weights", "text_kind"])
def test_bad_parameter_fails_at_start_naming_its_key(project_copy: Path, key, value,
                                                     message) -> None:
    with pytest.raises(Exception, match=message):
        run_pipeline(project_copy, "tokenize", {key: value})
    assert not (project_copy / "data/05_model_input").exists()


def test_catalog_puts_every_output_in_a_layer(project_copy: Path) -> None:
    catalog = OmegaConfigLoader(str(project_copy / "conf"), base_env="base",
                                default_run_env="local")["catalog"]
    layers = {name: entry["metadata"]["kedro-viz"]["layer"] for name, entry in catalog.items()
              if name in (*TABLES, "text_tokenizer", "semantic_tokenizer", "codec_model",
                          "tokenize_summary", "tokenize_metrics", "tokenize_tags")}
    assert set(layers.values()) == {"feature", "model_input", "reporting"}
    assert len(layers) == 10
    assert all(catalog[name].get("versioned") for name in (*TABLES, "text_tokenizer",
                                                           "semantic_tokenizer", "codec_model"))
