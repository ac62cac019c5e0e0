"""bark-kedro-synthesize: Orbax and suno model files, tokenizer artifacts, cloning, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from bark_kedro.audio.io import write_audio_atomic
from bark_kedro.generation.cli import main
from bark_kedro.generation.voice import load_voice_prompt
from bark_kedro.models import export_suno_checkpoint, save_model
from bark_kedro.tokenizers.codec import CodecTokenizer
from bark_kedro.tokenizers.features import MFCCExtractor
from bark_kedro.tokenizers.semantic import SemanticTokenizer, fit_semantic_quantizer
from bark_kedro.tokenizers.text import VocabTokenizer
from tests.generation.reference import TINY_CONFIG, tiny_models

SMALL_WINDOWS = ["--semantic-window", str(TINY_CONFIG.semantic_window),
                 "--max-coarse-history", str(TINY_CONFIG.max_coarse_history),
                 "--sliding-window-len", str(TINY_CONFIG.sliding_window_len),
                 "--fine-window", str(TINY_CONFIG.fine_window), "--max-semantic-tokens", "20"]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """Tiny models (Orbax dirs + a suno .pt fine model), tokenizer artifacts, a recording."""
    root = tmp_path_factory.mktemp("cli")
    models = tiny_models()
    for stage, model in models.items():
        save_model(root / stage, model)
    export_suno_checkpoint(models["fine"], root / "fine.pt")
    text = VocabTokenizer.build("chars", ["hello there. how are you?"])
    (root / "text.json").write_text(json.dumps(text.to_dict()))
    rng = np.random.default_rng(0)
    t = np.arange(24_000 * 3) / 24_000
    audio = (0.3 * np.sin(2 * np.pi * 220 * t * (1 + t)) + 0.01 * rng.standard_normal(t.size))
    audio = audio.astype(np.float32)
    CodecTokenizer.random([audio], kmeans_iters=1).save(root / "codec.pt")
    write_audio_atomic(root / "me.wav", audio, 24_000)
    from bark_kedro.audio.processing import resample

    extractor = MFCCExtractor()
    quantizer = fit_semantic_quantizer([extractor(resample(audio, 24_000, 16_000))], 16)
    SemanticTokenizer(extractor, quantizer).save(root / "semantic_tokenizer")
    return root


def _args(root, *extra, fine="fine"):
    return ["hello there. how are you?", "--semantic", str(root / "semantic"),
            "--coarse", str(root / "coarse"), "--fine", str(root / fine),
            "--text-tokenizer", str(root / "text.json"), "--codec", str(root / "codec.pt"),
            *SMALL_WINDOWS, *extra]


@pytest.mark.slow
def test_clone_a_voice_then_reuse_it(artifacts, tmp_path):
    out, voice = tmp_path / "a.wav", tmp_path / "voice.npz"
    status = main(_args(artifacts, "-o", str(out), "--clone", str(artifacts / "me.wav"),
                        "--semantic-tokenizer", str(artifacts / "semantic_tokenizer"),
                        "--save-voice", str(voice), "--seed", "3"))
    assert status == 0
    audio, rate = sf.read(out)
    assert rate == 24_000 and audio.ndim == 1 and len(audio) > 0 and len(audio) % 320 == 0
    prompt = load_voice_prompt(voice)
    assert prompt.semantic.max() < 16 and prompt.fine.shape == (8, 225)
    again = tmp_path / "b.wav"  # the saved prompt, and the fine model from a suno .pt file
    assert main(_args(artifacts, "-o", str(again), "--voice", str(voice), "--seed", "3",
                      fine="fine.pt")) == 0
    np.testing.assert_array_equal(sf.read(again)[0], audio)


@pytest.mark.slow  # the module's artifacts take ~10 s to build
def test_bad_input_exits_2_with_a_message(artifacts, tmp_path, caplog):
    assert main(_args(artifacts, "-o", str(tmp_path / "x.wav"), "--top-p", "2")) == 2
    assert "GenerationConfig.top_p" in caplog.text
    assert main(_args(artifacts, "-o", str(tmp_path / "x.wav"), "--clone", "me.wav")) == 2
    assert "--clone needs --semantic-tokenizer" in caplog.text
    assert main(_args(artifacts, "-o", str(tmp_path / "x.wav"), fine="nothing")) == 2
    assert "--fine" in caplog.text and not (tmp_path / "x.wav").exists()
    with pytest.raises(SystemExit):
        main(["text", "--semantic", "a"])  # argparse: required arguments missing


@pytest.mark.slow
def test_fit_windows_uses_the_training_windows_of_small_models(artifacts, tmp_path):
    out = tmp_path / "fit.wav"
    base = _args(artifacts, "-o", str(out))
    start = base.index("--semantic-window")
    args = base[:start] + base[start + 8:]  # Bark's default windows: too big for these models
    assert main(args) == 2
    assert main([*args, "--fit-windows"]) == 0
    audio, rate = sf.read(out)
    assert rate == 24_000 and len(audio) > 0


def test_help_shows_defaults_only_where_there_are_some_and_explains_every_option():
    from bark_kedro.generation.cli import build_parser

    text = build_parser().format_help()
    assert "(default: None)" not in text
    assert "(default: 0.7)" in text
    for action in build_parser()._actions:
        assert action.help, action.dest
