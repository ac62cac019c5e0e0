"""Semantic tokens: frame features (MFCC / HuBERT / wav2vec2) quantized by k-means, ~50 Hz."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bark_kedro.tokenizers.features import (
    FEATURE_KINDS,
    MFCCExtractor,
    SSLExtractor,
    build_feature_extractor,
)
from bark_kedro.tokenizers.frames import SEMANTIC_SAMPLE_RATE
from bark_kedro.tokenizers.kmeans import KMeansQuantizer

__all__ = ["FEATURE_KINDS", "SemanticTokenizer", "build_feature_extractor", "extract_features",
           "fit_semantic_quantizer"]

FeatureExtractor = MFCCExtractor | SSLExtractor


def extract_features(extractor: FeatureExtractor, audios: Iterable[np.ndarray],
                     sample_rate: int = SEMANTIC_SAMPLE_RATE) -> list[np.ndarray]:
    """Features (frames, dim) of every 16 kHz clip in ``audios``."""
    return [extractor(a, sample_rate) for a in audios]


def fit_semantic_quantizer(features: Sequence[np.ndarray], n_clusters: int,
                           max_frames: int | None = None, seed: int = 0,
                           **kmeans_options: Any) -> KMeansQuantizer:
    """Fit a :class:`KMeansQuantizer` on training-split features (a list of (frames, dim)).

    ``max_frames`` caps the rows clustered (a seeded random subset) to bound time and memory.
    """
    if not features:
        raise ValueError("no training features to fit the semantic quantizer on")
    x = np.concatenate([np.asarray(f, np.float32) for f in features], axis=0)
    if max_frames is not None and len(x) > max_frames:
        rows = np.random.default_rng(seed).choice(len(x), max_frames, replace=False)
        x = x[np.sort(rows)]
    return KMeansQuantizer(n_clusters, seed=seed, **kmeans_options).fit(x)


@dataclass
class SemanticTokenizer:
    """Audio (16 kHz mono float32) -> int32 ids in ``[0, vocab_size)``, one per 320 samples."""

    extractor: FeatureExtractor
    quantizer: KMeansQuantizer

    def __post_init__(self) -> None:
        if self.quantizer.dim != self.extractor.dim:
            raise ValueError(f"the quantizer was fitted on {self.quantizer.dim}-dim features, the "
                             f"{self.extractor.kind} extractor gives {self.extractor.dim}")

    @property
    def vocab_size(self) -> int:
        return self.quantizer.n_clusters

    def encode(self, audio: np.ndarray, sample_rate: int = SEMANTIC_SAMPLE_RATE) -> np.ndarray:
        """Semantic ids (frames,) of one clip; ``frames == semantic_frame_count(len(audio))``."""
        return self.quantizer.predict(self.extractor(audio, sample_rate))

    def encode_batch(self, audios: Iterable[np.ndarray],
                     sample_rate: int = SEMANTIC_SAMPLE_RATE) -> list[np.ndarray]:
        """:meth:`encode` for every clip of ``audios``."""
        return [self.encode(a, sample_rate) for a in audios]
