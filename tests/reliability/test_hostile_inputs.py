"""The hostile corpus through ingestion: every row ends in exactly one table, with its reason."""

import pytest

from bark_kedro.audio.ingest import IngestConfig, ingest_utterances
from bark_kedro.audio.sources import read_manifest
from tests.reliability.hostile_corpus import (
    BAD_MANIFEST_ROWS,
    make_hostile_corpus,
    make_hostile_manifests,
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    made = make_hostile_corpus(tmp_path_factory.mktemp("hostile"))
    yield made
    made.close()


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_no_row_is_lost_and_each_has_its_reason(corpus, kind, tmp_path):
    manifest = corpus.csv_manifest if kind == "csv" else corpus.jsonl_manifest
    sources = read_manifest(manifest)
    utterances, rejected = ingest_utterances(sources, tmp_path, IngestConfig(), progress=False)
    assert len(utterances) + len(rejected) == len(sources)  # nothing lost
    codes = {r.utterance_id: r.reason.split(":")[0] for r in rejected.itertuples()}
    bad_rows = {k: v for k, v in codes.items() if v == "bad_manifest_row"}
    assert len(bad_rows) == BAD_MANIFEST_ROWS[kind]
    rest = {k: v for k, v in codes.items() if v != "bad_manifest_row"}
    assert rest == {k: v for k, v in corpus.expected.items() if v is not None}
    kept = dict(zip(utterances.utterance_id, utterances.text, strict=True))
    assert set(kept) == {k for k, v in corpus.expected.items() if v is None}
    assert {k: kept[k] for k in corpus.texts} == corpus.texts


def test_files_posing_as_manifests_are_named(tmp_path):
    for name, path in make_hostile_manifests(tmp_path).items():
        with pytest.raises(ValueError, match=name.replace(".", r"\.")):
            read_manifest(path)
