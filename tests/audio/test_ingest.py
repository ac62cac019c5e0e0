from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from bark_kedro.audio.ingest import (
    REJECTED_COLUMNS,
    UTTERANCE_COLUMNS,
    IngestConfig,
    assign_split,
    assign_splits,
    ingest_utterances,
    normalize_transcript,
    safe_file_stem,
    summarize,
)
from bark_kedro.audio.processing import db_to_amplitude, integrated_loudness
from bark_kedro.audio.sources import read_manifest
from tests.audio.bad_corpus import make_bad_input_corpus, tone


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    manifest, expected = make_bad_input_corpus(root)
    sources = read_manifest(manifest)
    utterances, rejected = ingest_utterances(sources, root / "out", IngestConfig(), progress=False)
    return sources, expected, utterances, rejected


def source_table(rows):
    return pd.DataFrame(rows, columns=["utterance_id", "speaker", "text", "source_path"])


def test_every_input_row_ends_in_exactly_one_table(corpus):
    sources, expected, utterances, rejected = corpus
    assert list(utterances.columns) == UTTERANCE_COLUMNS
    assert list(rejected.columns) == REJECTED_COLUMNS
    kept, dropped = set(utterances["utterance_id"]), set(rejected["utterance_id"])
    assert not kept & dropped
    assert len(utterances) + len(rejected) == len(sources)
    assert kept | dropped == set(sources["utterance_id"]) == set(expected)


def test_rejections_carry_the_expected_codes(corpus):
    _, expected, utterances, rejected = corpus
    codes = {row.utterance_id: row.reason.split(":", 1)[0] for row in rejected.itertuples()}
    assert codes == {k: v for k, v in expected.items() if v is not None}
    assert set(utterances["utterance_id"]) == {k for k, v in expected.items() if v is None}
    for row in rejected.itertuples():
        code, detail = row.reason.split(": ", 1)
        assert detail.strip(), row.reason


def test_outputs_are_mono_at_both_rates_and_peak_normalized(corpus):
    _, _, utterances, _ = corpus
    target_peak = db_to_amplitude(IngestConfig().peak_dbfs)
    for row in utterances.itertuples():
        for path, rate in ((row.audio_24k_path, 24_000), (row.audio_16k_path, 16_000)):
            info = sf.info(path)
            assert (info.samplerate, info.channels, info.subtype) == (rate, 1, "FLOAT")
            assert Path(path).name.split(".")[0] == row.utterance_id
            audio, _ = sf.read(path, dtype="float32")
            assert np.max(np.abs(audio)) == pytest.approx(target_peak, rel=1e-5)
            assert audio.size == pytest.approx(row.duration_s * rate, abs=2)
        assert Path(row.audio_24k_path).parent.name == "audio_24k"
        assert Path(row.audio_16k_path).parent.name == "audio_16k"
    leftovers = [p for p in Path(utterances["audio_24k_path"][0]).parent.parent.rglob("*.tmp")]
    assert leftovers == []


def test_durations_speakers_and_texts(corpus):
    _, _, utterances, _ = corpus
    rows = utterances.set_index("utterance_id")
    assert rows.loc["stereo_22k_wav", "duration_s"] == pytest.approx(0.8, abs=1e-3)
    assert rows.loc["mono_44k_flac", "duration_s"] == pytest.approx(0.5, abs=1e-3)
    assert rows.loc["stereo_22k_flac", "text"] == "Jumps over the lazy dog."
    # NFKC folds the full-width comma
    assert rows.loc["chinese", "text"] == "你好,世界。这是一个测试。"
    assert "👋🏽" in rows.loc["emoji", "text"] and "👨\u200d👩\u200d👧" in rows.loc["emoji", "text"]
    assert set(rows["speaker"]) == {"spk_a", "spk_b", "spk_c"}
    assert set(rows["split"]) <= {"train", "validation"}


def test_split_is_deterministic_and_follows_the_fraction():
    ids = [f"utt_{i:05d}" for i in range(4000)]
    splits = [assign_split(i, 0.1) for i in ids]
    assert splits == [assign_split(i, 0.1) for i in ids]
    assert 0.08 < splits.count("validation") / len(ids) < 0.12
    assert {assign_split(i, 0.0) for i in ids[:100]} == {"train"}
    assert {assign_split(i, 1.0) for i in ids[:100]} == {"validation"}
    # growing the fraction only moves utterances from train to validation
    wider = [assign_split(i, 0.3) for i in ids]
    assert all(w == "validation" for s, w in zip(splits, wider, strict=True) if s == "validation")


def test_split_in_the_table_matches_assign_splits(corpus):
    _, _, utterances, _ = corpus
    config = IngestConfig()
    expected = assign_splits(utterances["utterance_id"].tolist(), utterances["speaker"].tolist(),
                             config.validation_fraction, config.min_clips_for_validation)
    assert utterances["split"].tolist() == expected


def test_small_speakers_get_one_validation_clip(tmp_path):
    ids = [f"LJ001-{i:04d}" for i in range(24, 32)]
    assert {assign_split(i, 0.1) for i in ids} == {"train"}  # the hash alone gives none
    rows = []
    for n, utterance_id in enumerate(ids):
        clip = tmp_path / f"{utterance_id}.wav"
        sf.write(clip, tone(1.0, 24_000, 150.0 + 10 * n, seed=n), 24_000)
        rows.append((utterance_id, "LJ", f"Sentence number {n}.", str(clip)))
    sources = source_table(rows)
    utterances, _ = ingest_utterances(sources, tmp_path / "out", IngestConfig(), progress=False)
    validation = utterances.loc[utterances["split"] == "validation", "utterance_id"].tolist()
    assert len(validation) == 1
    again, _ = ingest_utterances(sources.iloc[::-1], tmp_path / "out2", IngestConfig(),
                                 progress=False)
    assert again.loc[again["split"] == "validation", "utterance_id"].tolist() == validation
    summary = summarize(utterances, pd.DataFrame(columns=REJECTED_COLUMNS))
    assert summary["validation_utterances.LJ"] == 1.0
    assert summary["speakers_without_validation"] == 0.0
    # below the threshold, or with the guarantee off, the hash split stands
    off, _ = ingest_utterances(sources, tmp_path / "out3",
                               IngestConfig(min_clips_for_validation=0), progress=False)
    assert set(off["split"]) == {"train"}
    assert assign_splits(ids[:4], ["LJ"] * 4, 0.1, 5) == ["train"] * 4
    assert assign_splits(ids, ["LJ"] * 4 + ["B"] * 4, 0.1, 4).count("validation") == 2


def test_normalize_transcript():
    assert normalize_transcript("  Hello\t\n  world \x00\x07! ") == "Hello world !"
    assert normalize_transcript("ｆｕｌｌ\u3000ｗｉｄｔｈ") == "full width"
    assert normalize_transcript("ﬁne") == "fine"
    assert normalize_transcript("中文 😀 test") == "中文 😀 test"
    assert normalize_transcript("👩\u200d💻") == "👩\u200d💻"  # zero-width joiner kept
    assert normalize_transcript(" \t ") == ""


def test_safe_file_stem():
    assert safe_file_stem("LJ001-0001") == "LJ001-0001"
    unsafe = ["../etc/passwd", "a/b", "a b", "中文", ".hidden", "", "x" * 300]
    stems = [safe_file_stem(u) for u in unsafe]
    assert len(set(stems)) == len(stems)
    for stem in stems:
        assert stem and len(stem) <= 100 and not stem.startswith(".")
        assert all(c.isascii() and (c.isalnum() or c in "._-") for c in stem)
    assert safe_file_stem("a/b") == safe_file_stem("a/b")


def test_duplicate_ids_and_file_name_clashes(tmp_path):
    sf.write(tmp_path / "a.wav", tone(0.5, 16_000, 200), 16_000)
    wav = str(tmp_path / "a.wav")
    sources = source_table(
        [
            ["one", "s", "first", wav],
            ["one", "s", "second", wav],
            ["Case", "s", "third", wav],
            ["case", "s", "fourth", wav],  # same file name on case-insensitive file systems
            ["with space", "s", "fifth", wav],
        ]
    )
    utterances, rejected = ingest_utterances(sources, tmp_path / "out", IngestConfig(), False)
    assert utterances["text"].tolist() == ["first", "third", "fifth"]
    assert rejected["reason"].str.startswith("duplicate_id: ").tolist() == [True, True]
    assert Path(utterances["audio_24k_path"][2]).name.startswith(f"{safe_file_stem('with space')}.")


def test_missing_transcript_cells_are_empty_not_nan(tmp_path):
    sf.write(tmp_path / "a.wav", tone(0.5, 16_000, 200), 16_000)
    wav = str(tmp_path / "a.wav")
    sources = source_table([["a", "s", None, wav], ["b", "s", "fine", wav]])
    utterances, rejected = ingest_utterances(sources, tmp_path / "out", IngestConfig(), False)
    assert utterances["utterance_id"].tolist() == ["b"]
    assert rejected["reason"][0].startswith("empty_transcript: ")


def test_relative_output_dir_stays_relative(tmp_path, monkeypatch):
    sf.write(tmp_path / "a.wav", tone(0.5, 22_050, 200), 22_050)
    monkeypatch.chdir(tmp_path)
    sources = source_table([["a", "s", "hi", "a.wav"]])
    utterances, _ = ingest_utterances(sources, Path("data/out"), IngestConfig(), progress=True)
    path = utterances["audio_24k_path"][0]
    assert not Path(path).is_absolute() and Path(path).parent == Path("data/out/audio_24k")
    assert Path(utterances["audio_16k_path"][0]).parent == Path("data/out/audio_16k")


def test_reingest_with_other_settings_keeps_the_older_files(tmp_path):
    sf.write(tmp_path / "a.wav", tone(0.5, 22_050, 200), 22_050)
    sources = source_table([["a", "s", "hi", str(tmp_path / "a.wav")]])
    first, _ = ingest_utterances(sources, tmp_path / "out", IngestConfig(), progress=False)
    before = Path(first["audio_24k_path"][0]).read_bytes()
    second, _ = ingest_utterances(sources, tmp_path / "out",
                                  IngestConfig(peak_dbfs=-6.0), progress=False)
    assert second["audio_24k_path"][0] != first["audio_24k_path"][0]
    assert Path(first["audio_24k_path"][0]).read_bytes() == before
    again, _ = ingest_utterances(sources, tmp_path / "out", IngestConfig(), progress=False)
    assert again["audio_24k_path"][0] == first["audio_24k_path"][0]


def test_loudness_normalization(tmp_path):
    sf.write(tmp_path / "a.wav", tone(0.8, 22_050, 200) * 0.2, 22_050)
    config = IngestConfig(normalization="loudness", loudness_lufs=-23.0)
    utterances, _ = ingest_utterances(
        source_table([["a", "s", "hi", str(tmp_path / "a.wav")]]), tmp_path / "out", config, False
    )
    for path in utterances[["audio_24k_path", "audio_16k_path"]].iloc[0]:
        audio, rate = sf.read(path, dtype="float32")
        assert integrated_loudness(audio, rate) == pytest.approx(-23.0, abs=0.1)


def test_trimming_cuts_edge_silence_and_the_duration_follows(tmp_path):
    rate = 22_050
    padded = np.concatenate([np.zeros(rate // 2), tone(0.5, rate, 200)[:, 0], np.zeros(rate)])
    sf.write(tmp_path / "a.wav", padded.astype(np.float32), rate)
    sources = source_table([["a", "s", "hi", str(tmp_path / "a.wav")]])
    kept, _ = ingest_utterances(sources, tmp_path / "plain", IngestConfig(), False)
    assert kept["duration_s"][0] == pytest.approx(2.0)
    trimmed, _ = ingest_utterances(sources, tmp_path / "trim",
                                   IngestConfig(trim_silence_db=40.0, trim_margin_s=0.05), False)
    assert trimmed["duration_s"][0] == pytest.approx(0.6, abs=0.02)
    audio, out_rate = sf.read(trimmed["audio_24k_path"][0], dtype="float32")
    assert len(audio) / out_rate == pytest.approx(trimmed["duration_s"][0])
    assert np.abs(audio[: int(0.04 * out_rate)]).max() < 1e-3  # the kept margin is silent
    assert np.abs(audio[int(0.06 * out_rate): int(0.1 * out_rate)]).max() > 0.1


def test_nothing_valid_raises_with_reject_counts(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    sources = source_table(
        [
            ["a", "s", "hi", str(tmp_path / "missing.wav")],
            ["b", "s", "hi", str(tmp_path / "empty.wav")],
            ["c", "s", "hi", str(tmp_path / "missing2.wav")],
        ]
    )
    with pytest.raises(
        ValueError, match=r"no valid utterances.*3 row.*missing_file=2.*empty_file=1"
    ):
        ingest_utterances(sources, tmp_path / "out", IngestConfig(), progress=False)


def test_missing_columns_are_named(tmp_path):
    with pytest.raises(ValueError, match="source_path"):
        ingest_utterances(pd.DataFrame({"utterance_id": ["a"]}), tmp_path, IngestConfig(), False)


def test_summarize(corpus):
    _, expected, utterances, rejected = corpus
    summary = summarize(utterances, rejected)
    assert summary["n_utterances"] == sum(v is None for v in expected.values())
    assert summary["n_rejected"] == sum(v is not None for v in expected.values())
    assert summary["n_speakers"] == 3
    assert summary["hours_total"] == pytest.approx(utterances["duration_s"].sum() / 3600)
    assert summary["hours_train"] + summary["hours_validation"] == pytest.approx(
        summary["hours_total"]
    )
    for code in set(expected.values()) - {None}:
        assert summary[f"rejected.{code}"] == 1.0
    assert summary["rejected.duplicate_id"] == 0.0
    assert all(isinstance(v, float) for v in summary.values())


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("normalization", "rms"),
        ("max_duration_s", 0.1),
        ("validation_fraction", 1.5),
        ("codec_sample_rate", 0),
        ("peak_dbfs", 3.0),
        ("min_clips_for_validation", 1),
        ("min_clips_for_validation", -2),
        ("trim_silence_db", 0.0),
        ("trim_margin_s", -0.1),
    ],
)
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"IngestConfig.{field}"):
        IngestConfig(**{field: value})
