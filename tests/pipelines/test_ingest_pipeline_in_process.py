"""The ingest pipeline's wiring, run in-process: a DataCatalog of memory datasets and Kedro's
SequentialRunner (no Kedro session, no MLflow; the session run is in test_ingest_pipeline)."""

from __future__ import annotations

from pathlib import Path

import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from bark_kedro.pipelines import ingest
from bark_kedro.pipelines.ingest.params import IngestParams
from tests.audio.bad_corpus import make_bad_input_corpus


class KeptMemoryDataset(MemoryDataset):
    """A memory dataset the runner does not release once its last reader has run."""

    def _release(self) -> None:
        pass


def test_every_utterance_lands_in_one_table_and_the_summary_counts_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    manifest, expected = make_bad_input_corpus(tmp_path / "bad_corpus")
    params = IngestParams.model_validate({"source": {"kind": "manifest", "path": str(manifest)},
                                          "progress": False})
    pipeline = ingest.create_pipeline()
    catalog = DataCatalog({"params:ingest": MemoryDataset(params, copy_mode="assign")})
    for name in pipeline.all_outputs():
        catalog[name] = KeptMemoryDataset(copy_mode="assign")
    SequentialRunner().run(pipeline, catalog)

    utterances, rejected = catalog.load("utterances"), catalog.load("rejected_utterances")
    valid = {uid for uid, reason in expected.items() if reason is None}
    assert set(utterances.utterance_id) == valid
    assert set(rejected.utterance_id) == set(expected) - valid
    reasons = dict(zip(rejected.utterance_id, rejected.reason, strict=True))
    for uid, code in expected.items():
        if code is not None:
            assert reasons[uid].startswith(code), (uid, reasons[uid])
    for path in utterances.audio_24k_path:
        assert (tmp_path / path).is_file()
    summary, metrics = catalog.load("ingest_summary"), catalog.load("ingest_metrics")
    assert summary["n_utterances"] == len(valid)
    assert summary["n_rejected"] == len(expected) - len(valid)
    assert metrics["n_rejected"] == {"value": len(expected) - len(valid), "step": 0}
