"""Configurations of the three tokenizers for a corpus, and how each builds its tokenizer.

These are plain dataclasses (the Kedro layer validates them as typed parameters); a bad value
raises a ValueError naming the field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bark_kedro.tokenizers.codec import WEIGHT_MODES, Codec, load_codec, resolve_weights
from bark_kedro.tokenizers.features import FEATURE_KINDS, build_feature_extractor
from bark_kedro.tokenizers.mel_codec import MelCodecConfig
from bark_kedro.tokenizers.text import TEXT_TOKENIZER_KINDS, TextTokenizer, build_text_tokenizer


def _fail(config: Any, name: str, problem: str) -> None:
    raise ValueError(f"{type(config).__name__}.{name}={getattr(config, name)!r}: {problem}")


def _positive(config: Any, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if value is not None and value <= 0:
            _fail(config, name, "must be > 0")


@dataclass(frozen=True)
class TextConfig:
    """``kind``: ``bark`` (BERT vocabulary from ``path`` or the Hugging Face cache in
    ``cache_dir``), ``chars`` or ``phonemes`` (eSpeak NG IPA in ``voice``; vocabularies built
    from the training split, symbols seen fewer than ``min_count`` times become unknown)."""

    kind: str = "chars"
    min_count: int = 1
    lowercase: bool = False
    voice: str = "en-us"
    path: str | None = None
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in TEXT_TOKENIZER_KINDS:
            _fail(self, "kind", f"must be one of {list(TEXT_TOKENIZER_KINDS)}")
        _positive(self, "min_count")

    def build(self, train_texts: Sequence[str]) -> TextTokenizer:
        """The tokenizer: loaded (``bark``) or built from ``train_texts``."""
        if self.kind == "bark":
            return build_text_tokenizer("bark", path=self.path, cache_dir=self.cache_dir)
        return build_text_tokenizer(self.kind, list(train_texts), min_count=self.min_count,
                                    lowercase=self.lowercase, voice=self.voice)


@dataclass(frozen=True)
class SemanticConfig:
    """Features (``mfcc``, or layer ``layer`` of ``hubert`` / ``wav2vec2`` with weights from
    ``checkpoint`` or torch hub's cache; ``model_params`` for another architecture) quantized
    by a k-means of ``n_clusters`` fitted on at most ``max_fit_frames`` frames of the training
    split (``max_iter`` Lloyd iterations, k-means++ on ``init_sample`` frames)."""

    features: str = "mfcc"
    n_mfcc: int = 13
    layer: int = 9
    bundle: str | None = None
    checkpoint: str | None = None
    model_params: dict[str, Any] | None = None
    device: str = "cpu"
    n_clusters: int = 50
    max_fit_frames: int = 200_000
    max_iter: int = 100
    init_sample: int = 10_000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.features not in FEATURE_KINDS:
            _fail(self, "features", f"must be one of {list(FEATURE_KINDS)}")
        _positive(self, "n_mfcc", "layer", "n_clusters", "max_fit_frames", "max_iter",
                  "init_sample")
        if self.max_fit_frames < self.n_clusters:
            _fail(self, "max_fit_frames", f"must be >= n_clusters={self.n_clusters}")

    def build_extractor(self):
        """The feature extractor (loads the SSL weights for ``hubert`` / ``wav2vec2``)."""
        if self.features == "mfcc":
            return build_feature_extractor("mfcc", n_mfcc=self.n_mfcc)
        return build_feature_extractor(self.features, layer=self.layer, bundle=self.bundle,
                                       checkpoint=self.checkpoint,
                                       model_params=self.model_params, device=self.device)

    def kmeans_options(self) -> dict[str, Any]:
        return {"max_iter": self.max_iter, "init_sample": self.init_sample}


@dataclass(frozen=True)
class CodecConfig:
    """Codec and weights: ``auto`` (pretrained EnCodec if in torch hub's cache, else the
    offline mel codec), ``pretrained``, ``mel`` (the mel residual-VQ codec, settings ``mel``,
    fitted on the train split), ``random`` (EnCodec with random weights, codebooks
    k-means-initialised on at most ``max_init_frames`` frames of training audio,
    ``kmeans_iters`` iterations: only when asked for), ``local`` with ``checkpoint``, or a
    checkpoint path itself. Encoding: see :class:`CodecTokenizer`; ``group_seconds`` of audio
    are read into memory at a time."""

    weights: str = "auto"
    checkpoint: str | None = None
    device: str = "cpu"
    batch_size: int = 16
    max_batch_seconds: float | None = None
    max_chunk_seconds: float = 30.0
    cpu_workers: int | None = None
    seed: int = 0
    kmeans_iters: int = 50
    max_init_frames: int = 8192
    group_seconds: float = 600.0
    mel: MelCodecConfig = field(default_factory=MelCodecConfig)

    def __post_init__(self) -> None:
        _positive(self, "batch_size", "max_batch_seconds", "max_chunk_seconds", "kmeans_iters",
                  "max_init_frames", "group_seconds")
        if isinstance(self.mel, dict):
            object.__setattr__(self, "mel", MelCodecConfig(**self.mel))
        if self.cpu_workers is not None and self.cpu_workers < 0:
            _fail(self, "cpu_workers", "must be >= 0 (0: padded batches) or null (one per core)")
        if self.weights == "local" and not self.checkpoint:
            _fail(self, "weights", "'local' needs `checkpoint`, the path of an EnCodec state dict")
        if self.weights not in WEIGHT_MODES and not Path(self.weights).is_file():
            _fail(self, "weights", f"must be one of {list(WEIGHT_MODES)} or the path of an "
                                   f"existing EnCodec checkpoint")

    def resolved_weights(self, log: bool = False) -> str:
        """``weights`` with ``auto`` resolved and a checkpoint path given as ``local``."""
        return resolve_weights(self.weights, log) if self.weights in WEIGHT_MODES else "local"

    def train_frames_needed(self) -> int:
        """Codec frames of training audio the codec is fitted on (0: it needs none)."""
        return {"mel": self.mel.max_fit_frames,
                "random": self.max_init_frames}.get(self.resolved_weights(), 0)

    def build(self, init_audio: Sequence[np.ndarray] | None = None) -> Codec:
        """The codec; ``init_audio`` (24 kHz training clips) for the mel codec and random
        EnCodec weights."""
        weights, checkpoint = self.resolved_weights(log=True), self.checkpoint
        if self.weights not in WEIGHT_MODES:
            checkpoint = self.weights
        return load_codec(weights, checkpoint, init_audio, mel=self.mel, device=self.device,
                          batch_size=self.batch_size, max_batch_seconds=self.max_batch_seconds,
                          max_chunk_seconds=self.max_chunk_seconds,
                          cpu_workers=self.cpu_workers, seed=self.seed,
                          kmeans_iters=self.kmeans_iters, max_init_frames=self.max_init_frames)
