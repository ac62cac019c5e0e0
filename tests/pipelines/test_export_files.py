"""The export's pieces: which clip becomes the voice prompt, Bark's file names, and a folder
that appears whole or not at all."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from kedro.io import Version

from bark_kedro.datasets.bark_files import BarkFilesDataset
from bark_kedro.generation.voice import pick_prompt_utterance, voice_prompt_from_tokens
from bark_kedro.models import BARK_VOCAB, build_model
from bark_kedro.models.suno_format import BARK_FILE_NAMES, bark_model_size, load_suno_checkpoint
from bark_kedro.training.model_init import CONFIG_BUILDERS


def _tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    ids = ["a", "b", "c", "d"]
    durations = [3.0, 7.5, 12.0, 2.0]
    splits = ["train", "train", "train", "validation"]
    semantic = pd.DataFrame({"utterance_id": ids, "speaker": "me", "split": splits,
                             "duration_s": durations,
                             "semantic_ids": [np.arange(int(d * 50)) % 100 for d in durations]})
    codes = [np.arange(8 * int(d * 75), dtype=np.int16) % 1024 for d in durations]
    codec = pd.DataFrame({"utterance_id": ids, "speaker": "me", "split": splits,
                          "duration_s": durations, "n_codebooks": 8,
                          "n_frames": [int(d * 75) for d in durations], "codes": codes})
    return semantic, codec


def test_the_prompt_is_the_longest_training_clip_that_fits():
    semantic, _ = _tables()
    assert pick_prompt_utterance(semantic, max_seconds=8.0) == "b"
    assert pick_prompt_utterance(semantic, max_seconds=1.0) == "a"  # none fits: the shortest
    with pytest.raises(ValueError, match="speaker 'you' has no training utterances"):
        pick_prompt_utterance(semantic, speaker="you")
    two = pd.concat([semantic, semantic.assign(speaker="other", utterance_id=list("wxyz"))])
    with pytest.raises(ValueError, match="2 speakers.*name the voice prompt's speaker"):
        pick_prompt_utterance(two)
    assert pick_prompt_utterance(two, speaker="other") == "x"


def test_the_prompt_holds_the_stored_tokens_of_its_clip():
    semantic, codec = _tables()
    prompt = voice_prompt_from_tokens(semantic, codec, "b").check(BARK_VOCAB)
    np.testing.assert_array_equal(prompt.semantic, semantic.loc[1, "semantic_ids"])
    assert prompt.fine.shape == (8, 562) and prompt.coarse.shape == (2, 562)
    np.testing.assert_array_equal(prompt.coarse, prompt.fine[:2])
    with pytest.raises(ValueError, match="'zz' lacks semantic or codec tokens"):
        voice_prompt_from_tokens(semantic, codec, "zz")


def _models() -> dict:
    return {stage: build_model(CONFIG_BUILDERS[stage]("test", BARK_VOCAB), seed=0)
            for stage in ("semantic", "coarse", "fine")}


def test_the_folder_holds_bark_files_under_bark_names(tmp_path):
    models = _models()
    assert bark_model_size(models) == "small"
    semantic, codec = _tables()
    prompt = voice_prompt_from_tokens(semantic, codec, "b")
    dataset = BarkFilesDataset(str(tmp_path / "bark_export"), version=Version(None, None))
    dataset.save({"models": models, "size": "large", "voices": {"me": prompt},
                  "voice_sources": {"me": "b"}})
    files = dataset.load()
    assert set(files) == {*BARK_FILE_NAMES["large"].values(), "me.npz", "manifest.json"}
    for stage, name in BARK_FILE_NAMES["large"].items():
        model, _ = load_suno_checkpoint(files[name], stage=stage)
        assert model.config.n_embd == models[stage].config.n_embd


def test_a_failed_export_leaves_no_version(tmp_path):
    models = _models()
    del models["fine"]
    dataset = BarkFilesDataset(str(tmp_path / "bark_export"), version=Version(None, None))
    with pytest.raises(Exception, match=r"missing \['fine'\]"):
        dataset.save({"models": models, "voices": {}})
    assert not any(p.is_file() for p in (tmp_path / "bark_export").rglob("*"))
    with pytest.raises(Exception, match="log_to_mlflow must be"):
        BarkFilesDataset(str(tmp_path / "x"), log_to_mlflow="yes")
