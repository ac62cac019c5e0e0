import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from bark_kedro.audio import demo_corpus as dc

SMALL = dc.DemoCorpusConfig(num_speakers=2, utterances_per_speaker=3, seed=7)


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    return root, dc.synthesize_demo_corpus(root, SMALL, progress=False)


def test_manifest_describes_written_multi_speaker_corpus(corpus):
    root, manifest = corpus
    assert list(manifest.columns) == ["id", "path", "text", "speaker"]
    assert len(manifest) == 6 and manifest["id"].is_unique
    assert manifest.groupby("speaker").size().to_dict() == {"spk00": 3, "spk01": 3}
    pd.testing.assert_frame_equal(dc.read_manifest(root), manifest)
    sentences = set(dc.load_demo_sentences())
    for row in manifest.itertuples():
        assert row.text in sentences
        assert not Path(row.path).is_absolute()
        info = sf.info(root / row.path)
        assert (info.samplerate, info.channels, info.subtype) == (22050, 1, "PCM_16")
        audio, _ = sf.read(root / row.path)
        assert np.sqrt(np.mean(audio**2)) > 0.01
    assert not list(root.rglob("*.tmp"))


def test_speakers_sound_different(corpus):
    root, manifest = corpus
    # the two speakers use different voice variants, pitches and rates
    styles = dc.plan_demo_corpus(SMALL).groupby("speaker")["voice"].first()
    assert styles.nunique() == 2
    a, _ = sf.read(root / manifest["path"][0])
    b, _ = sf.read(root / manifest["path"][3])
    assert not np.array_equal(a[: len(b)], b[: len(a)])


def test_same_config_gives_byte_identical_files(corpus, tmp_path):
    root, _ = corpus
    dc.synthesize_demo_corpus(tmp_path, SMALL, progress=False)
    assert _tree_digest(tmp_path) == _tree_digest(root)


def test_complete_corpus_is_not_synthesised_again(corpus, monkeypatch):
    root, manifest = corpus
    before = _tree_digest(root)

    def fail(*args, **kwargs):
        raise AssertionError("re-synthesised a complete corpus")

    monkeypatch.setattr(dc.espeak, "synthesize", fail)
    again = dc.synthesize_demo_corpus(root, SMALL, progress=False)
    pd.testing.assert_frame_equal(again, manifest)
    assert _tree_digest(root) == before


def test_damaged_or_reconfigured_corpus_is_rebuilt(tmp_path):
    manifest = dc.synthesize_demo_corpus(tmp_path, SMALL, progress=False)
    complete = _tree_digest(tmp_path)
    (tmp_path / manifest["path"][1]).unlink()
    dc.synthesize_demo_corpus(tmp_path, SMALL, progress=False)
    assert _tree_digest(tmp_path) == complete

    other = dc.DemoCorpusConfig(num_speakers=2, utterances_per_speaker=3, seed=8)
    rebuilt = dc.synthesize_demo_corpus(tmp_path, other, progress=False)
    assert not rebuilt["text"].equals(manifest["text"])
    pd.testing.assert_frame_equal(dc.read_manifest(tmp_path), rebuilt)


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    def crash(path, pcm, rate):
        Path(path).write_bytes(b"RIFF half a file")
        raise OSError("disk full")

    monkeypatch.setattr(dc, "_write_wav", crash)
    with pytest.raises(OSError, match="disk full"):
        dc.synthesize_demo_corpus(tmp_path, SMALL, progress=False)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_plan_is_seeded_and_reuses_sentences_across_speakers():
    config = dc.DemoCorpusConfig(num_speakers=4, utterances_per_speaker=60, seed=3)
    plan = dc.plan_demo_corpus(config)
    pd.testing.assert_frame_equal(plan, dc.plan_demo_corpus(config))
    reseeded = dc.plan_demo_corpus(dc.DemoCorpusConfig(4, 60, seed=4))
    assert not plan["text"].equals(reseeded["text"])
    assert plan.groupby("text")["speaker"].nunique().max() > 1
    assert plan.groupby("speaker")["text"].nunique().min() == 60  # no repeats within a pass
    for speaker, rows in plan.groupby("speaker"):
        style = config.speakers[int(speaker[3:])]
        assert (rows["voice"] == style.voice).all()
        assert rows["pitch"].between(style.pitch - 4, style.pitch + 4).all()


def test_more_utterances_than_sentences_reshuffles():
    config = dc.DemoCorpusConfig(1, 5, sentences=("One two three four.", "Five six seven eight."))
    texts = dc.plan_demo_corpus(config)["text"]
    assert len(texts) == 5 and texts.nunique() == 2


def test_bundled_sentences_are_varied_plain_prose():
    sentences = dc.load_demo_sentences()
    assert 80 <= len(sentences) <= 120 and len(set(sentences)) == len(sentences)
    lengths = [len(s.split()) for s in sentences]
    assert min(lengths) >= 4 and max(lengths) <= 15 and len(set(lengths)) > 5


def test_default_config_is_a_few_hundred_utterances_from_distinct_speakers():
    config = dc.DemoCorpusConfig()
    plan = dc.plan_demo_corpus(config)
    assert 200 <= len(plan) <= 400 and plan["speaker"].nunique() == config.num_speakers
    styles = plan.groupby("speaker")[["voice"]].first()
    assert styles["voice"].is_unique


def test_speakers_may_come_from_yaml_dicts():
    config = dc.DemoCorpusConfig(1, 1, speakers=[{"voice": "en+m2", "pitch": 50, "rate_wpm": 170}])
    assert config.speakers == (dc.SpeakerStyle("en+m2", 50, 170),)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_speakers": 0}, "num_speakers"),
        ({"num_speakers": 99}, "num_speakers"),
        ({"utterances_per_speaker": -1}, "utterances_per_speaker"),
        ({"seed": -1}, "seed"),
        ({"sentences": ("fine", "  ")}, "sentences"),
        ({"speakers": [{"voice": "en", "pitch": 50, "rate_wpm": 5}]}, "rate_wpm"),
    ],
)
def test_bad_config_is_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        dc.DemoCorpusConfig(**kwargs)
