"""``tokenize.engine=ray`` on a local Ray of 2 CPUs gives ``local``'s tables and rejects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers.kedro_runs import ingest_demo_corpus as ingest
from tests.helpers.tokenize_runs import TABLES, break_audio, table, tokenize

# EnCodec's codes of a clip depend a little on the clips padded with it in one batch (its last
# frames see the padding), so the engines agree bit for bit when each clip is encoded alone
ALONE = {"tokenize.codec.batch_size": 1}
RAY = {**ALONE, "tokenize.engine": "ray", "tokenize.ray.local_cpus": 2, "tokenize.ray.actors": 2,
       "tokenize.ray.batch_rows": 2}


def _assert_same(got: pd.DataFrame, want: pd.DataFrame, name: str) -> None:
    assert list(got.columns) == list(want.columns), name
    assert got.dtypes.to_dict() == want.dtypes.to_dict(), name
    assert got["utterance_id"].tolist() == want["utterance_id"].tolist(), name
    for column in want.columns:
        for a, b in zip(got[column], want[column], strict=True):
            if isinstance(b, np.ndarray):
                np.testing.assert_array_equal(a, b, err_msg=f"{name}.{column}")
            else:
                assert a == b, f"{name}.{column}"


@pytest.mark.slow
def test_ray_and_local_give_the_same_tables_and_rejects(project_copy: Path) -> None:
    import ray

    version = ingest(project_copy, 4, "data/02_intermediate")
    utterances = pd.read_parquet(project_copy / "data/03_primary/utterances.parquet" / version
                                 / "utterances.parquet")
    expected = break_audio(project_copy, utterances)
    tokenize(project_copy, **ALONE)
    local = {name: table(project_copy, name) for name in TABLES}
    try:
        tokenize(project_copy, **RAY)
        assert ray.is_initialized()
        assert ray.cluster_resources()["CPU"] == 2
    finally:
        ray.shutdown()
    on_ray = {name: table(project_copy, name) for name in TABLES}
    for name in TABLES:
        assert len(on_ray[name]) == len(local[name]) > 0
        _assert_same(on_ray[name], local[name], name)
    rejected = on_ray["rejected_tokenization"]
    assert dict(zip(rejected["utterance_id"], rejected["stage"], strict=True)) == expected
