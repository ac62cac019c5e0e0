"""Intelligibility: an ASR transcript of the audio, scored against the text (WER / CER, jiwer).

Offline default: pocketsphinx, whose PyPI wheel ships an English acoustic model, dictionary
and language model (a weak recognizer, CER about 0.5 on the demo's eSpeak voices, but a real
signal). For real work: Whisper through ``transformers`` from a local folder (a
``save_pretrained`` copy or a Hugging Face cache snapshot), never downloaded.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol

import jiwer
import numpy as np
import torch
import torchaudio

from bark_kedro.tokenizers._checks import mono_float32

ASR_SAMPLE_RATE = 16_000
ASR_KINDS = ("pocketsphinx", "whisper")


class Recognizer(Protocol):
    name: str

    def transcribe(self, audio: np.ndarray, sample_rate: int) -> str: ...


def normalize_text(text: str) -> str:
    """Lower case, letters / digits / apostrophes only, single spaces: what WER/CER compare."""
    text = re.sub(r"[^a-z0-9' ]+", " ", str(text).lower().replace("-", " "))
    return " ".join(text.split())


def error_rates(reference: str, hypothesis: str) -> dict[str, float]:
    """``wer`` and ``cer`` of ``hypothesis`` against ``reference`` after :func:`normalize_text`
    (an empty transcript scores 1.0). Raises a ValueError when the reference has no words."""
    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
    if not ref:
        raise ValueError(f"reference text {reference!r} has no words to score against")
    if not hyp:
        return {"wer": 1.0, "cer": 1.0}
    return {"wer": float(jiwer.wer(ref, hyp)), "cer": float(jiwer.cer(ref, hyp))}


def to_16k(audio: np.ndarray, sample_rate: int, name: str = "audio") -> np.ndarray:
    """Mono float32 ``audio`` resampled to 16 kHz (torchaudio), clipped to [-1, 1]."""
    x = mono_float32(audio, name)
    if int(sample_rate) != ASR_SAMPLE_RATE:
        x = torchaudio.functional.resample(torch.from_numpy(x), int(sample_rate),
                                           ASR_SAMPLE_RATE).numpy()
    return np.clip(x, -1.0, 1.0).astype(np.float32)


class PocketSphinxRecognizer:
    """pocketsphinx's bundled US English model (``en-us``), one decoder reused; its feature
    state (cepstral mean) is reset before every clip, so a transcript does not depend on the
    clips heard before it."""

    name = "pocketsphinx (bundled en-us model)"

    def __init__(self):
        from pocketsphinx import Decoder

        self._decoder = Decoder(samprate=ASR_SAMPLE_RATE, loglevel="FATAL")

    def transcribe(self, audio: np.ndarray, sample_rate: int) -> str:
        pcm = (to_16k(audio, sample_rate) * 32767).astype(np.int16).tobytes()
        self._decoder.reinit_feat()
        self._decoder.start_utt()
        self._decoder.process_raw(pcm, full_utt=True)
        self._decoder.end_utt()
        hyp = self._decoder.hyp()
        return hyp.hypstr if hyp is not None else ""


def local_model_folder(path: str | Path, what: str, expected: str) -> Path:
    """``path`` as a folder holding a transformers ``config.json``; else a FileNotFoundError
    saying what was expected there (real-work models are never downloaded)."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no {what} at {str(path)!r} (expected {expected}); models are "
                                f"never downloaded here")
    return path


class WhisperRecognizer:
    """Whisper (any size) loaded by ``transformers`` from the local folder ``path`` only: the
    model (``WhisperForConditionalGeneration``) and its processor (feature extractor and
    tokenizer), as ``save_pretrained`` writes them. Clips up to Whisper's 30 s window."""

    def __init__(self, path: str | Path, device: str = "cpu", language: str = "en"):
        path = local_model_folder(path, "Whisper model", "a folder with config.json, e.g. from "
                                  "WhisperForConditionalGeneration.save_pretrained or a Hugging "
                                  "Face cache snapshot")
        try:
            from transformers import WhisperForConditionalGeneration, WhisperProcessor
        except ImportError as err:
            raise ImportError("asr kind 'whisper' needs the transformers package") from err
        self._processor = WhisperProcessor.from_pretrained(path, local_files_only=True)
        self._model = WhisperForConditionalGeneration.from_pretrained(
            path, local_files_only=True).eval().to(device)
        self._device = device
        self._language = language
        self.name = f"whisper ({path.name})"

    def transcribe(self, audio: np.ndarray, sample_rate: int) -> str:
        features = self._processor.feature_extractor(
            to_16k(audio, sample_rate), sampling_rate=ASR_SAMPLE_RATE, return_tensors="pt"
        ).input_features.to(self._device)
        with torch.inference_mode():
            ids = self._model.generate(features, language=self._language, task="transcribe")
        return str(self._processor.batch_decode(ids, skip_special_tokens=True)[0]).strip()


def build_recognizer(kind: str = "pocketsphinx", path: str | None = None,
                     device: str = "cpu") -> Recognizer:
    """The recognizer ``kind`` (``pocketsphinx`` offline; ``whisper`` from ``path``)."""
    if kind == "pocketsphinx":
        return PocketSphinxRecognizer()
    if kind == "whisper":
        if not path:
            raise ValueError("asr kind 'whisper' needs `asr_path`, a local Whisper model folder")
        return WhisperRecognizer(path, device)
    raise ValueError(f"asr kind must be one of {ASR_KINDS}, got {kind!r}")
