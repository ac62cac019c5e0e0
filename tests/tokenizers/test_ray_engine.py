"""The Ray engine gives the local engine's token tables and rejects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bark_kedro.tokenizers import corpus, ray_engine
from bark_kedro.tokenizers.config import CodecConfig, TextConfig
from bark_kedro.tokenizers.ray_engine import RayEngineConfig
from tests.helpers.signals import write_corpus_with_rejects
from tests.helpers.tables import assert_same_table


@pytest.fixture(scope="module")
def utterances(tmp_path_factory) -> pd.DataFrame:
    return write_corpus_with_rejects(tmp_path_factory.mktemp("corpus"))


def _through_actor_output(stage, utterances, tokenizer, options, batch_rows=2):
    """The actors' output frames split back, batch by batch, as the engine does."""
    batches = utterances.assign(_order=np.arange(len(utterances)))
    tables, rejects = [], []
    for start in range(0, len(batches), batch_rows):
        batch = batches.iloc[start:start + batch_rows]
        table, rejected, _ = ray_engine.tokenize_batch(
            stage, batch.drop(columns=["_order"]).reset_index(drop=True), tokenizer, options)
        t, r = ray_engine._split(stage, ray_engine._actor_output(stage, batch, table, rejected))
        tables.append(t)
        rejects.append(r)
    return (pd.concat([t for t in tables if len(t)], ignore_index=True),
            pd.concat([r for r in rejects if len(r)], ignore_index=True))


def test_batches_through_the_actor_output_give_the_local_tables(utterances):
    text = corpus.fit_text_tokenizer(utterances, TextConfig())
    codec = corpus.build_codec(utterances, CodecConfig(weights="random", kmeans_iters=2,
                                                       max_init_frames=512))
    for stage, tokenizer, options in (("text", text, {}),
                                      ("codec", codec, {"group_seconds": 600.0})):
        expected, expected_rejects, _ = getattr(corpus, f"tokenize_{stage}")(
            utterances, tokenizer, **options, progress=False)
        table, rejects = _through_actor_output(stage, utterances, tokenizer, options)
        assert_same_table(table, expected)
        assert_same_table(rejects, expected_rejects)
        assert len(rejects) == 1


def test_engine_settings_are_checked():
    with pytest.raises(ValueError, match=r"RayEngineConfig\.actors=0: must be an int >= 1"):
        RayEngineConfig(actors=0)
    with pytest.raises(ValueError, match=r"RayEngineConfig\.num_gpus=-1: must be >= 0"):
        RayEngineConfig(num_gpus=-1)
    with pytest.raises(ValueError, match="stage='words'"):
        next(ray_engine.iter_token_batches(pd.DataFrame(), "words", None, RayEngineConfig()))
