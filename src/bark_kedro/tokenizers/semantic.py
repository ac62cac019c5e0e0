"""Semantic tokens, ~50 Hz: frame features (MFCC / HuBERT / wav2vec2) quantized by k-means,
or HuBERT Base layer-9 features quantized by a learned Bark-compatible quantizer."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bark_kedro.tokenizers.bark_semantic import BarkHubertQuantizer
from bark_kedro.tokenizers.features import (
    FEATURE_KINDS,
    MFCCExtractor,
    SSLExtractor,
    build_feature_extractor,
)
from bark_kedro.tokenizers.frames import SEMANTIC_SAMPLE_RATE
from bark_kedro.tokenizers.kmeans import KMeansQuantizer

__all__ = ["FEATURE_KINDS", "QUANTIZER_KINDS", "SemanticTokenizer", "build_feature_extractor", "extract_features",
           "fit_semantic_quantizer"]

FeatureExtractor = MFCCExtractor | SSLExtractor
Quantizer = KMeansQuantizer | BarkHubertQuantizer
QUANTIZER_KINDS = ("kmeans", "bark_hubert")
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
    """Audio (16 kHz mono float32) -> int32 ids in ``[0, vocab_size)``, one per 320 samples.

    With a :class:`BarkHubertQuantizer` the ids are Bark's own (``bark_compatible``)."""

    extractor: FeatureExtractor
    quantizer: Quantizer

    def __post_init__(self) -> None:
        if self.quantizer.dim != self.extractor.dim:
            raise ValueError(f"the quantizer was fitted on {self.quantizer.dim}-dim features, the "
                             f"{self.extractor.kind} extractor gives {self.extractor.dim}")

    @property
    def vocab_size(self) -> int:
        return self.quantizer.n_clusters

    @property
    def quantizer_kind(self) -> str:
        return "bark_hubert" if isinstance(self.quantizer, BarkHubertQuantizer) else "kmeans"

    @property
    def bark_compatible(self) -> bool:
        """Whether the ids are Bark's semantic ids (what the official models understand)."""
        return self.quantizer_kind == "bark_hubert"

    def encode(self, audio: np.ndarray, sample_rate: int = SEMANTIC_SAMPLE_RATE) -> np.ndarray:
        """Semantic ids (frames,) of one clip; ``frames == semantic_frame_count(len(audio))``."""
        return self.quantizer.predict(self.extractor(audio, sample_rate))

    def encode_batch(self, audios: Iterable[np.ndarray],
                     sample_rate: int = SEMANTIC_SAMPLE_RATE) -> list[np.ndarray]:
        """:meth:`encode` for every clip of ``audios`` (a learned quantizer runs batched)."""
        features = [self.extractor(a, sample_rate) for a in audios]
        if isinstance(self.quantizer, BarkHubertQuantizer):
            return self.quantizer.predict_batch(features)
        return [self.quantizer.predict(f) for f in features]

    def save(self, directory: str | Path) -> None:
        """Write ``extractor.json`` (feature config) and ``quantizer.npz`` into ``directory``; a
        learned quantizer is referenced by its path and sha256 instead of copied."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"format_version": FORMAT_VERSION, "extractor": extractor_config(self.extractor)}
        if isinstance(self.quantizer, BarkHubertQuantizer):
            meta["quantizer"] = self.quantizer.config()
        else:
            self.quantizer.save(directory / QUANTIZER_FILE)
        (directory / EXTRACTOR_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path, quantizer_path: str | Path | None = None,
             **extractor_options: Any) -> SemanticTokenizer:
        """Read a tokenizer written by :meth:`save`; ``extractor_options`` (e.g. ``device``,
        ``checkpoint``) override the saved feature config, ``quantizer_path`` the saved path of
        a learned quantizer (its sha256 must match)."""
        directory = Path(directory)
        meta_file = directory / EXTRACTOR_FILE
        if not meta_file.is_file():
            missing = [f for f in (EXTRACTOR_FILE, QUANTIZER_FILE) if not (directory / f).is_file()]
            raise FileNotFoundError(f"{str(directory)!r} is not a saved SemanticTokenizer: "
                                    f"missing {missing}")
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{str(meta_file)!r}: unsupported format_version "
                             f"{meta.get('format_version')!r}")
        learned = meta.get("quantizer")
        if learned is None and not (directory / QUANTIZER_FILE).is_file():
            raise FileNotFoundError(f"{str(directory)!r} is not a saved SemanticTokenizer: "
                                    f"missing {[QUANTIZER_FILE]}")
        options = {**meta["extractor"], **extractor_options}
        options.pop("weights_format", None)  # recognised from the weights again
        if options.get("model_params") is not None:  # JSON turned the conv tuples into lists
            options["model_params"] = _conv_tuples(options["model_params"])
        if learned is None:
            quantizer = KMeansQuantizer.load(directory / QUANTIZER_FILE)
        else:
            quantizer = _learned_quantizer(learned, quantizer_path, options.get("device", "cpu"),
                                           meta_file)
        kind = options.pop("kind")
        if kind == "mfcc":
            options.pop("device", None)  # MFCCs run on the CPU
        return cls(build_feature_extractor(kind, **options), quantizer)


def _learned_quantizer(saved: dict[str, Any], path: str | Path | None, device: str,
                       meta_file: Path) -> BarkHubertQuantizer:
    if saved.get("kind") != "bark_hubert":
        raise ValueError(f"{str(meta_file)!r}: unknown quantizer kind {saved.get('kind')!r}")
    path = Path(path) if path is not None else Path(saved["path"])
    if not path.is_file():
        raise FileNotFoundError(f"{str(meta_file)!r} uses the quantizer {str(path)!r}, which "
                                f"does not exist; put the file there or pass `quantizer_path`")
    quantizer = BarkHubertQuantizer(str(path), device=device)
    if quantizer.digest != saved.get("sha256"):
        raise ValueError(f"quantizer {str(path)!r} is not the file this tokenizer was made with "
                         f"(sha256 {quantizer.digest[:12]}..., expected "
                         f"{str(saved.get('sha256'))[:12]}...)")
    return quantizer


def _conv_tuples(model_params: dict[str, Any]) -> dict[str, Any]:
    params = dict(model_params)
    layers = params.get("extractor_conv_layer_config")
    if layers is not None:
        params["extractor_conv_layer_config"] = [tuple(layer) for layer in layers]
    return params


def load_semantic_tokenizer(path: str | Path, hubert: str | Path | None = None,
                            device: str = "cpu") -> SemanticTokenizer:
    """A tokenizer from ``path``: a :meth:`SemanticTokenizer.save` directory, or a learned
    quantizer ``.pth`` file (``quantifier_hubert_base_ls960*.pth``) over layer 9 of the HuBERT
    weights ``hubert`` (torchaudio state dict, fairseq ``.pt`` or transformers folder; default
    torchaudio's HUBERT_BASE in torch hub's cache)."""
    path = Path(path)
    if path.is_dir():
        return SemanticTokenizer.load(path, device=device)
    if not path.is_file():
        raise FileNotFoundError(f"semantic tokenizer {str(path)!r} is neither a saved "
                                f"SemanticTokenizer directory nor a quantizer .pth file")
    quantizer = BarkHubertQuantizer(str(path), device=device)
    extractor = build_feature_extractor("hubert", layer=9, device=device,
                                        checkpoint=None if hubert is None else str(hubert))
    return SemanticTokenizer(extractor, quantizer)
