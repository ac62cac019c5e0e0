import numpy as np
import pytest
import torch
import torchaudio

from bark_kedro.audio import espeak
from bark_kedro.evaluation.hearing import HearingConfig, drop_codec_dependent, role_table
from bark_kedro.evaluation.intelligibility import (
    PocketSphinxRecognizer,
    WhisperRecognizer,
    build_recognizer,
    error_rates,
    normalize_text,
)
from bark_kedro.evaluation.quality import DnsMos
from bark_kedro.evaluation.report import UtteranceEvaluation
from bark_kedro.evaluation.speaker import (
    ResemblyzerEncoder,
    WavLMSpeakerEncoder,
    build_speaker_encoder,
    cosine_similarity,
    mean_embedding,
)

SR = 24_000
TEXTS = ["The meeting was moved to thursday afternoon.",
         "Someone left a bicycle chained to the railings.",
         "The old man at the station sold newspapers."]


def speak(text: str, voice: str, pitch: int = 50) -> np.ndarray:
    audio, rate = espeak.synthesize(text, voice, pitch=pitch)
    return torchaudio.functional.resample(torch.from_numpy(audio), rate, SR).numpy()


def test_error_rates_of_the_text_itself_are_zero():
    text = "The candle burned down, to a tiny stub!"
    assert error_rates(text, text) == {"wer": 0.0, "cer": 0.0}
    assert error_rates(text, normalize_text(text).upper()) == {"wer": 0.0, "cer": 0.0}
    assert error_rates(text, "") == {"wer": 1.0, "cer": 1.0}
    rates = error_rates("one two three four", "one two tree four")
    assert rates["wer"] == pytest.approx(0.25) and 0 < rates["cer"] < rates["wer"]
    with pytest.raises(ValueError, match="no words"):
        error_rates("?!", "hello")


def test_cosine_similarity():
    assert cosine_similarity([1, 0], [2, 0]) == pytest.approx(1.0)
    assert cosine_similarity([1, 0], [0, 3]) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="differ"):
        cosine_similarity([1, 0], [1, 0, 0])


def test_missing_real_work_models_fail_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="no Whisper model at .*never downloaded"):
        WhisperRecognizer(tmp_path / "whisper-large-v3")
    with pytest.raises(FileNotFoundError, match="no speaker model at .*never downloaded"):
        WavLMSpeakerEncoder(tmp_path / "wavlm-sv")
    with pytest.raises(ValueError, match="asr_path"):
        build_recognizer("whisper")
    with pytest.raises(ValueError, match="speaker_path"):
        build_speaker_encoder("wavlm")
    with pytest.raises(ValueError, match="asr_path"):
        HearingConfig(asr="whisper")
    with pytest.raises(ValueError, match="must be one of"):
        HearingConfig(mos="utmos")


def test_random_codec_metrics_are_dropped_and_roles_tabled():
    e = UtteranceEvaluation("u", "t", None, None, {"mcd_db": 1.0, "codec_token_accuracy_cb0": 0.1,
                                                  "synthesized/cer": 0.5})
    assert drop_codec_dependent([e])[0].metrics == {"synthesized/cer": 0.5}
    table = role_table({"synthesized/cer_mean": 0.5, "original/wer_mean": 0.2, "x_mean": 1})
    assert table == {"synthesized": {"cer": 0.5}, "original": {"wer": 0.2}}


@pytest.mark.slow
def test_pocketsphinx_hears_espeak_speech():
    asr = PocketSphinxRecognizer()
    cers = [error_rates(t, asr.transcribe(speak(t, "en-us"), SR))["cer"] for t in TEXTS]
    noise = np.random.default_rng(0).normal(0, 0.1, 3 * SR).astype(np.float32)
    assert np.mean(cers) < 0.8  # a weak recognizer, but far from chance
    assert error_rates(TEXTS[0], asr.transcribe(noise, SR))["cer"] > np.mean(cers)


@pytest.mark.slow
def test_pocketsphinx_transcript_does_not_depend_on_the_clips_before():
    clip = speak("The old man at the station sold newspapers, peppermints, and very small "
                 "umbrellas.", "en-us+m3", 45)
    noise = np.random.default_rng(0).normal(0, 0.3, 4 * SR).astype(np.float32)
    fresh = PocketSphinxRecognizer().transcribe(clip, SR)
    asr = PocketSphinxRecognizer()
    asr.transcribe(noise, SR)  # loud noise first: it moved the cepstral mean of the next clip
    assert asr.transcribe(clip, SR) == fresh


@pytest.mark.slow
def test_same_speaker_is_more_similar_than_another_speaker():
    encoder = ResemblyzerEncoder()
    a = mean_embedding(encoder, [speak(t, "en-us+m3", 45) for t in TEXTS[:2]], SR)
    b = mean_embedding(encoder, [speak(t, "en-us+f2", 60) for t in TEXTS[:2]], SR)
    same = cosine_similarity(encoder.embed(speak(TEXTS[2], "en-us+m3", 45), SR), a)
    other = cosine_similarity(encoder.embed(speak(TEXTS[2], "en-us+m3", 45), SR), b)
    assert same > other


@pytest.mark.slow
def test_dnsmos_is_lower_with_added_noise():
    mos = DnsMos()
    clean = speak(TEXTS[0], "en-us")
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 0.05, clean.shape), -1, 1)
    clean_scores, noisy_scores = mos.score(clean, SR), mos.score(noisy.astype(np.float32), SR)
    assert set(clean_scores) == {"dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808"}
    assert noisy_scores["dnsmos_bak"] < clean_scores["dnsmos_bak"]
    assert noisy_scores["dnsmos_ovrl"] < clean_scores["dnsmos_ovrl"]
    with pytest.raises(ValueError, match="silence"):
        mos.score(np.zeros(SR, np.float32), SR)


@pytest.mark.slow
def test_listen_to_heldout_hears_all_three_roles(tmp_path):
    import pandas as pd
    import soundfile as sf

    from bark_kedro.evaluation.audio_metrics import summarize
    from bark_kedro.evaluation.hearing import Listener, listen_to_heldout

    rows = []
    for k, (text, split) in enumerate(zip(TEXTS, ["train", "train", "validation"], strict=True)):
        path = tmp_path / f"u{k}.wav"
        sf.write(path, speak(text, "en-us+m3", 45), SR)
        rows.append({"utterance_id": f"u{k}", "speaker": "m3", "text": text, "split": split,
                     "audio_24k_path": str(path)})
    utterances = pd.DataFrame(rows)
    recording = speak(TEXTS[2], "en-us+m3", 45)
    noise = np.random.default_rng(0).normal(0, 0.05, SR).astype(np.float32)
    heard = listen_to_heldout(
        [UtteranceEvaluation("u2", TEXTS[2], recording, noise, {"duration_ratio": 1.0})],
        utterances, Listener(HearingConfig(speaker_references=2)))
    (u,) = heard
    assert u.original_audio is not None and set(u.transcripts) == set(
        ["synthesized", "round_trip", "original"])
    m = u.metrics
    assert m["duration_ratio"] == 1.0
    assert m["original/cer"] < m["synthesized/cer"]  # speech is heard better than noise
    assert m["original/speaker_similarity"] > m["synthesized/speaker_similarity"]
    table = role_table(summarize([m]))
    assert set(table) == {"synthesized", "round_trip", "original"}
    assert set(table["original"]) == {"cer", "wer", "speaker_similarity", "dnsmos_sig",
                                      "dnsmos_bak", "dnsmos_ovrl"}
