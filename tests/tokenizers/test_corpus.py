"""Corpus-level tokenization: fitting on the train split, per-utterance rejects, alignment."""

import numpy as np
import pandas as pd
import pytest

from bark_kedro.tokenizers import corpus
from bark_kedro.tokenizers.config import CodecConfig, SemanticConfig, TextConfig
from bark_kedro.tokenizers.report import numeric_leaves, summarize_tokenization
from bark_kedro.tokenizers.tables import codes_matrix
from tests.helpers.signals import CORPUS_TEXTS, TINY_HUBERT, write_corpus

TEXTS = CORPUS_TEXTS


@pytest.fixture(scope="module")
def utterances(tmp_path_factory) -> pd.DataFrame:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def codec(utterances):
    return corpus.build_codec(utterances, CodecConfig(weights="random", kmeans_iters=2,
                                                      max_init_frames=512))


def test_text_vocabulary_from_train_only_unknowns_in_validation(utterances):
    tokenizer = corpus.fit_text_tokenizer(utterances, TextConfig(kind="chars"))
    assert "ü" not in tokenizer.symbols and "z" not in tokenizer.symbols  # validation-only
    table, rejects, stats = corpus.tokenize_text(utterances, tokenizer, progress=False)
    assert rejects.empty and table.utterance_id.tolist() == utterances.utterance_id.tolist()
    validation = table.set_index("utterance_id").text_ids["u4"]
    assert (validation == tokenizer.unk_id).sum() == sum(c not in tokenizer.symbols
                                                         for c in TEXTS[4])
    assert tokenizer.decode(table.text_ids[0]) == TEXTS[0]  # round trip
    assert stats["unknown_fraction"] > 0 and stats["vocab_size"] == tokenizer.text_vocab_size
    assert all(ids.max() < tokenizer.text_vocab_size for ids in table.text_ids)


def test_empty_text_is_rejected_and_the_rest_goes_on(utterances):
    broken = utterances.assign(text=["", *TEXTS[1:]])
    tokenizer = corpus.fit_text_tokenizer(utterances, TextConfig(kind="chars"))
    table, rejects, _ = corpus.tokenize_text(broken, tokenizer, progress=False)
    assert table.utterance_id.tolist() == ["u1", "u2", "u3", "u4"]
    assert rejects.to_dict("records") == [
        {"utterance_id": "u0", "stage": "text", "reason": rejects.reason[0]}]
    assert rejects.reason[0].startswith("empty_ids")


def test_a_stage_that_tokenizes_nothing_fails_loudly(utterances):
    tokenizer = corpus.fit_text_tokenizer(utterances, TextConfig(kind="chars"))
    with pytest.raises(ValueError, match="no utterance could be tokenized by the text stage"):
        corpus.tokenize_text(utterances.assign(text=""), tokenizer, progress=False)
    with pytest.raises(ValueError, match="no train-split utterances"):
        corpus.fit_text_tokenizer(utterances.assign(split="validation"), TextConfig())


@pytest.mark.slow
def test_semantic_rates_alignment_and_rejects(utterances, tmp_path):
    config = SemanticConfig(n_clusters=6, max_iter=10, init_sample=200)
    tokenizer, fit = corpus.fit_semantic_tokenizer(utterances, config, progress=False)
    train_seconds = utterances[utterances.split == "train"].duration_s.sum()
    assert fit["n_fit_utterances"] == 4 and fit["audio_seconds"] == pytest.approx(train_seconds)
    broken = utterances.copy()
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    broken.loc[1, "audio_16k_path"] = str(tmp_path / "bad.wav")
    broken.loc[2, "duration_s"] = 5.0  # the file is 0.9 s long
    broken.loc[3, "audio_16k_path"] = broken.loc[3, "audio_24k_path"]  # 24 kHz audio
    table, rejects, stats = corpus.tokenize_semantic(broken, tokenizer, progress=False)
    assert table.utterance_id.tolist() == ["u0", "u4"]
    reasons = dict(zip(rejects.utterance_id, rejects.reason, strict=True))
    assert reasons["u1"].startswith("unreadable_audio")
    assert reasons["u2"].startswith("frame_mismatch: 45 semantic frames for 5.000 s")
    assert reasons["u3"].startswith("bad_audio") and "24000 Hz" in reasons["u3"]
    for row in table.itertuples():
        assert abs(len(row.semantic_ids) - row.duration_s * 50) <= 1
        assert row.semantic_ids.max() < 6
    assert stats["n_rejected"] == 3 and stats["audio_s_per_s"] > 0


def test_codec_alignment_groups_chunks_and_short_audio(utterances, codec, tmp_path):
    short = write_corpus(tmp_path, durations=[0.004, 0.02], texts=["a", "b"],
                         splits=["train", "train"])  # shorter than one codec frame / 24 kHz
    table = pd.concat([utterances, short.assign(utterance_id=["tiny0", "tiny1"])],
                      ignore_index=True)
    whole, rejects, stats = corpus.tokenize_codec(table, codec, progress=False)
    assert rejects.empty and stats["n_tokenized"] == len(table)
    by_id = {row.utterance_id: codes_matrix(row) for _, row in whole.iterrows()}
    assert by_id["tiny0"].shape == (8, 1) and by_id["tiny1"].shape == (8, 2)
    for row in whole.itertuples():
        assert abs(row.n_frames - row.duration_s * 75) <= 1 and codes_matrix(row).dtype == np.int16
    # groups of ~1 s of audio read at a time, and 0.5 s chunks, keep shapes and the first chunk
    chunked = codec.with_options(max_chunk_seconds=0.5)
    again = corpus.tokenize_codec(table, chunked, group_seconds=1.0, progress=False)[0]
    for (_, a), (_, b) in zip(whole.iterrows(), again.iterrows(), strict=True):
        assert a.n_frames == b.n_frames
        first = min(a.n_frames, 37)  # EnCodec is causal: chunk 1 sees what the clip sees
        assert np.mean(codes_matrix(a)[0, :first] == codes_matrix(b)[0, :first]) >= 0.8


def test_codec_rejects_unreadable_and_misaligned_audio(utterances, codec, tmp_path):
    broken = utterances.copy()
    broken.loc[0, "audio_24k_path"] = str(tmp_path / "missing.wav")
    broken.loc[2, "duration_s"] = 0.5
    table, rejects, _ = corpus.tokenize_codec(broken, codec, progress=False)
    assert table.utterance_id.tolist() == ["u1", "u3", "u4"]
    reasons = dict(zip(rejects.utterance_id, rejects.reason, strict=True))
    assert reasons["u0"].startswith("unreadable_audio")
    assert reasons["u2"].startswith("frame_mismatch: 68 codec frames for 0.500 s")


def test_report_counts_and_flattens():
    rejects = pd.DataFrame({"utterance_id": ["a", "a", "b"], "stage": ["semantic", "codec", "codec"],
                            "reason": ["unreadable_audio: x", "unreadable_audio: x",
                                       "frame_mismatch: y"]})
    report = summarize_tokenization(10, {"codec": {"audio_s_per_s": 3.0}}, rejects,
                                    {"codec_weights": "random"})
    assert report["n_trainable"] == 8 and report["n_rejected"] == 3
    assert report["rejected_by_stage"] == {"semantic": 1, "codec": 2}
    assert report["rejected_by_reason"] == {"codec.frame_mismatch": 1,
                                            "codec.unreadable_audio": 1,
                                            "semantic.unreadable_audio": 1}
    flat = numeric_leaves(report)
    assert flat["stages.codec.audio_s_per_s"] == 3.0 and "tokenizers.codec_weights" not in flat
    assert corpus.combine_rejects(rejects.iloc[:0], rejects).equals(rejects)


def test_phoneme_vocabulary(utterances):
    from bark_kedro.audio.espeak import phonemize

    tokenizer = corpus.fit_text_tokenizer(utterances, TextConfig(kind="phonemes"))
    table = corpus.tokenize_text(utterances, tokenizer, progress=False)[0]
    assert tokenizer.decode(table.text_ids[0]) == phonemize(TEXTS[0], "en-us")
    assert all(len(ids) > 0 for ids in table.text_ids)


@pytest.mark.slow
def test_ssl_features_at_50_hz_from_a_local_checkpoint(utterances, tmp_path):
    import torch
    import torchaudio

    torch.manual_seed(0)
    path = tmp_path / "tiny_wav2vec2.pth"
    torch.save(torchaudio.models.wav2vec2_model(**TINY_HUBERT).state_dict(), path)
    config = SemanticConfig(features="wav2vec2", layer=2, checkpoint=str(path),
                            model_params=TINY_HUBERT, n_clusters=5, init_sample=100)
    tokenizer, _ = corpus.fit_semantic_tokenizer(utterances, config, progress=False)
    assert tokenizer.extractor.dim == 32 and tokenizer.extractor.layer == 2
    table = corpus.tokenize_semantic(utterances, tokenizer, progress=False)[0]
    for row in table.itertuples():
        assert abs(len(row.semantic_ids) - row.duration_s * 50) <= 1
