"""Speaker similarity: cosine of speaker embeddings.

Offline default: resemblyzer's d-vector encoder (its PyPI wheel ships the weights). For real
work: a WavLM x-vector model (``WavLMForXVector``, e.g. ``microsoft/wavlm-base-plus-sv``)
loaded by ``transformers`` from a local folder, never downloaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from bark_kedro.evaluation.intelligibility import ASR_SAMPLE_RATE, local_model_folder, to_16k

SPEAKER_KINDS = ("resemblyzer", "wavlm")


class SpeakerEncoder(Protocol):
    name: str

    def embed(self, audio: np.ndarray, sample_rate: int) -> np.ndarray: ...


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two embedding vectors (0 when either is zero)."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"embeddings differ in size: {a.shape} vs {b.shape}")
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / norm) if norm > 0 else 0.0


def mean_embedding(encoder: SpeakerEncoder, audios: Sequence[np.ndarray],
                   sample_rate: int) -> np.ndarray:
    """The unit-length mean embedding of several recordings of one speaker."""
    if not audios:
        raise ValueError("no recordings to embed")
    mean = np.mean([encoder.embed(a, sample_rate) for a in audios], axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-12)


class ResemblyzerEncoder:
    """resemblyzer's ``VoiceEncoder`` (256-dim d-vectors) on its own preprocessing (16 kHz,
    volume normalisation, voice-activity trimming)."""

    name = "resemblyzer VoiceEncoder (bundled weights)"

    def __init__(self, device: str = "cpu"):
        from resemblyzer import VoiceEncoder

        self._encoder = VoiceEncoder(device, verbose=False)

    def embed(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        from resemblyzer import preprocess_wav

        wav = preprocess_wav(to_16k(audio, sample_rate), source_sr=ASR_SAMPLE_RATE)
        if len(wav) < ASR_SAMPLE_RATE // 10:  # all trimmed away as silence: use the raw clip
            wav = to_16k(audio, sample_rate)
        return np.asarray(self._encoder.embed_utterance(wav), np.float32)


class WavLMSpeakerEncoder:
    """A ``WavLMForXVector`` checkpoint and its feature extractor from the folder ``path``."""

    def __init__(self, path: str | Path, device: str = "cpu"):
        path = local_model_folder(path, "speaker model", "a WavLMForXVector folder with "
                                  "config.json and weights, e.g. from save_pretrained")
        try:
            from transformers import AutoFeatureExtractor, WavLMForXVector
        except ImportError as err:
            raise ImportError("speaker kind 'wavlm' needs the transformers package") from err
        self._extractor = AutoFeatureExtractor.from_pretrained(path, local_files_only=True)
        self._model = WavLMForXVector.from_pretrained(path, local_files_only=True).eval().to(device)
        self._device = device
        self.name = f"WavLM x-vector ({path.name})"

    def embed(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        inputs = self._extractor(to_16k(audio, sample_rate), sampling_rate=ASR_SAMPLE_RATE,
                                 return_tensors="pt")
        with torch.inference_mode():
            out = self._model(**{k: v.to(self._device) for k, v in inputs.items()})
        return out.embeddings[0].float().cpu().numpy()


def build_speaker_encoder(kind: str = "resemblyzer", path: str | None = None,
                          device: str = "cpu") -> SpeakerEncoder:
    """The encoder ``kind`` (``resemblyzer`` offline; ``wavlm`` from ``path``)."""
    if kind == "resemblyzer":
        return ResemblyzerEncoder(device)
    if kind == "wavlm":
        if not path:
            raise ValueError("speaker kind 'wavlm' needs `speaker_path`, a local model folder")
        return WavLMSpeakerEncoder(path, device)
    raise ValueError(f"speaker kind must be one of {SPEAKER_KINDS}, got {kind!r}")
