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

from bark_kedro.tokenizers.bark_semantic import BarkHubertQuantizer
from bark_kedro.tokenizers.codec import WEIGHT_MODES, Codec, load_codec, resolve_weights
from bark_kedro.tokenizers.features import (
    FEATURE_KINDS,
    build_feature_extractor,
    expected_ssl_checkpoint,
)
from bark_kedro.tokenizers.mel_codec import MelCodecConfig
from bark_kedro.tokenizers.semantic import QUANTIZER_KINDS, SemanticTokenizer
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
        if self.kind == "bark" and self.path and not Path(self.path).exists():
            _fail(self, "path", "no such file or folder: put Bark's BERT vocabulary there "
                                "(vocab.txt of bert-base-multilingual-cased)")

    def build(self, train_texts: Sequence[str]) -> TextTokenizer:
        """The tokenizer: loaded (``bark``) or built from ``train_texts``."""
        if self.kind == "bark":
            return build_text_tokenizer("bark", path=self.path, cache_dir=self.cache_dir)
        return build_text_tokenizer(self.kind, list(train_texts), min_count=self.min_count,
                                    lowercase=self.lowercase, voice=self.voice)


@dataclass(frozen=True)
class SemanticConfig:
    """Features (``mfcc``, or layer ``layer`` of ``hubert`` / ``wav2vec2`` with weights from
    ``checkpoint`` (torchaudio state dict, fairseq ``.pt`` or transformers folder) or torch
    hub's cache; ``model_params`` for another architecture) quantized by

    - ``quantizer: kmeans``: a k-means of ``n_clusters`` fitted on at most ``max_fit_frames``
      frames of the training split (``max_iter`` Lloyd iterations, k-means++ on
      ``init_sample`` frames);
    - ``quantizer: bark_hubert``: the learned quantizer file ``quantizer_path``
      (``quantifier_hubert_base_ls960*.pth``) over HuBERT Base layer-9 features, giving Bark's
      own 10 000 semantic ids (``quantizer_batch_frames`` frames per batch).
    """

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
    quantizer: str = "kmeans"
    quantizer_path: str | None = None
    quantizer_batch_frames: int = 4096

    def __post_init__(self) -> None:
        if self.features not in FEATURE_KINDS:
            _fail(self, "features", f"must be one of {list(FEATURE_KINDS)}")
        if self.quantizer not in QUANTIZER_KINDS:
            _fail(self, "quantizer", f"must be one of {list(QUANTIZER_KINDS)}")
        _positive(self, "n_mfcc", "layer", "n_clusters", "max_fit_frames", "max_iter",
                  "init_sample", "quantizer_batch_frames")
        if self.max_fit_frames < self.n_clusters:
            _fail(self, "max_fit_frames", f"must be >= n_clusters={self.n_clusters}")
        if self.quantizer == "bark_hubert":
            self._check_bark_files()

    def _check_bark_files(self) -> None:
        """The learned quantizer needs HuBERT features and two local files: fail now, naming
        the parameter and the path, rather than after ingest."""
        if self.features != "hubert":
            _fail(self, "features", "quantizer=bark_hubert needs features=hubert (HuBERT Base "
                                    "layer 9, what the quantizer was trained on)")
        if not self.quantizer_path:
            _fail(self, "quantizer_path", "quantizer=bark_hubert needs the path of a "
                                          "quantifier_hubert_base_ls960*.pth file")
        if not Path(self.quantizer_path).is_file():
            _fail(self, "quantizer_path", "no such file: download a quantifier_hubert_base_ls960"
                                          "*.pth (e.g. from the GitMylo/bark-voice-cloning "
                                          "model repository) and put it there")
        hubert = Path(self.checkpoint) if self.checkpoint else expected_ssl_checkpoint(
            self.bundle or "HUBERT_BASE")
        if not hubert.exists():
            _fail(self, "checkpoint", f"no HuBERT Base weights at {str(hubert)!r} (torchaudio's "
                                      f"hubert_fairseq_base_ls960.pth in torch hub's cache, "
                                      f"fairseq's hubert_base_ls960.pt, or a transformers "
                                      f"facebook/hubert-base-ls960 folder)")

    def build_extractor(self):
        """The feature extractor (loads the SSL weights for ``hubert`` / ``wav2vec2``)."""
        if self.features == "mfcc":
            return build_feature_extractor("mfcc", n_mfcc=self.n_mfcc)
        return build_feature_extractor(self.features, layer=self.layer, bundle=self.bundle,
                                       checkpoint=self.checkpoint,
                                       model_params=self.model_params, device=self.device)

    def kmeans_options(self) -> dict[str, Any]:
        return {"max_iter": self.max_iter, "init_sample": self.init_sample}

    def build_bark_tokenizer(self) -> SemanticTokenizer:
        """``quantizer=bark_hubert``: HuBERT features and the learned quantizer, both loaded."""
        quantizer = BarkHubertQuantizer(str(self.quantizer_path), device=self.device,
                                        batch_frames=self.quantizer_batch_frames)
        return SemanticTokenizer(self.build_extractor(), quantizer)


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
