"""Semantic tokens: frame features (MFCC / HuBERT / wav2vec2) quantized by k-means, ~50 Hz."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
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
EXTRACTOR_FILE = "extractor.json"
QUANTIZER_FILE = "quantizer.npz"
FORMAT_VERSION = 1


def extractor_config(extractor: FeatureExtractor) -> dict[str, Any]:
    """The options that rebuild ``extractor`` with :func:`build_feature_extractor` (the SSL
    weights are referenced by their checkpoint path, or torch hub's cache when None)."""
    config = dict(extractor.config())
    if isinstance(extractor, SSLExtractor) and extractor.model_params is not None:
        config["model_params"] = extractor.model_params
    return config


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

    def save(self, directory: str | Path) -> None:
        """Write ``extractor.json`` (feature config) and ``quantizer.npz`` into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"format_version": FORMAT_VERSION, "extractor": extractor_config(self.extractor)}
        (directory / EXTRACTOR_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        self.quantizer.save(directory / QUANTIZER_FILE)

    @classmethod
    def load(cls, directory: str | Path, **extractor_options: Any) -> SemanticTokenizer:
        """Read a tokenizer written by :meth:`save`; ``extractor_options`` (e.g. ``device``,
        ``checkpoint``) override the saved feature config."""
        directory = Path(directory)
        files = [directory / EXTRACTOR_FILE, directory / QUANTIZER_FILE]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"{str(directory)!r} is not a saved SemanticTokenizer: "
                                    f"missing {missing}")
        meta = json.loads(files[0].read_text(encoding="utf-8"))
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{str(files[0])!r}: unsupported format_version "
                             f"{meta.get('format_version')!r}")
        options = {**meta["extractor"], **extractor_options}
        if options.get("model_params") is not None:  # JSON turned the conv tuples into lists
            options["model_params"] = _conv_tuples(options["model_params"])
        extractor = build_feature_extractor(options.pop("kind"), **options)
        return cls(extractor, KMeansQuantizer.load(files[1]))


def _conv_tuples(model_params: dict[str, Any]) -> dict[str, Any]:
    params = dict(model_params)
    layers = params.get("extractor_conv_layer_config")
    if layers is not None:
        params["extractor_conv_layer_config"] = [tuple(layer) for layer in layers]
    return params
