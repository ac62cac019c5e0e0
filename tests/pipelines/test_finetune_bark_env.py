"""The finetune_bark environment: official files as parameters, LoRA by default, a missing
file named with its expected path when parameters are validated (before any node runs)."""

from __future__ import annotations

from pathlib import Path

import pytest
from kedro.config import OmegaConfigLoader

from bark_kedro.pipelines.ingest.params import IngestParams
from bark_kedro.pipelines.tokenize.params import TokenizeParams
from bark_kedro.pipelines.train.params import TrainStageParams

CONF = Path(__file__).resolve().parents[2] / "conf"
OFFICIAL = "data/06_models/bark_official"
FILES = [f"{OFFICIAL}/{name}" for name in (
    "text_2.pt", "coarse_2.pt", "fine_2.pt", "hubert_base_ls960.pt",
    "quantifier_hubert_base_ls960_14.pth", "encodec_24khz-d7cc33bc.th",
    "bert-base-multilingual-cased/vocab.txt")]


def _parameters() -> dict:
    return OmegaConfigLoader(str(CONF), base_env="base",
                             default_run_env="finetune_bark")["parameters"]


def test_each_missing_official_file_is_named_with_its_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = _parameters()
    for stage, name in (("semantic", "text_2.pt"), ("coarse", "coarse_2.pt"),
                        ("fine", "fine_2.pt")):
        with pytest.raises(ValueError, match=f"checkpoint names no file.*{OFFICIAL}/{name}"):
            TrainStageParams.model_validate(params[f"train_{stage}"])
    with pytest.raises(ValueError) as missing:
        TokenizeParams.model_validate(params["tokenize"])
    for key, path in (("TextConfig.path", "bert-base-multilingual-cased"),
                      ("SemanticConfig.quantizer_path", "quantifier_hubert_base_ls960_14.pth"),
                      ("CodecConfig.weights", "encodec_24khz-d7cc33bc.th")):
        assert f"{key}='{OFFICIAL}/{path}'" in str(missing.value)
    for path in FILES[:-4] + FILES[-3:]:  # all but HuBERT: it is the one named
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).touch()
    with pytest.raises(ValueError, match=f"no HuBERT Base weights at '{OFFICIAL}/hubert_base"):
        TokenizeParams.model_validate(params["tokenize"])


def test_with_the_files_in_place_every_stage_fine_tunes_suno_weights_with_lora(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for path in FILES:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).touch()
    params = _parameters()
    tokenize = TokenizeParams.model_validate(params["tokenize"])
    assert (tokenize.text.kind, tokenize.semantic.quantizer) == ("bark", "bark_hubert")
    assert IngestParams.model_validate(params["ingest"]).processing.min_clips_for_validation == 5
    for stage in ("semantic", "coarse", "fine"):
        init = TrainStageParams.model_validate(params[f"train_{stage}"]).init
        assert (init.init_from, init.finetune) == ("suno", "lora")
        assert init.lora.rank == 16 and init.lora.target_modules == ("c_attn", "c_proj", "c_fc")
