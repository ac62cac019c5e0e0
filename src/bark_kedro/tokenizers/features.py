"""Frame features for semantic tokens: MFCC (offline) or a HuBERT / wav2vec2 layer.

Every extractor maps 16 kHz mono float32 audio of ``n`` samples to ``semantic_frame_count(n)``
frames (hop 320, ~50 Hz) of ``dim`` float32 features.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchaudio

from bark_kedro.tokenizers._checks import check_sample_rate, mono_float32
from bark_kedro.tokenizers.frames import SEMANTIC_HOP, SEMANTIC_SAMPLE_RATE, semantic_frame_count
from bark_kedro.tokenizers.ssl_weights import (
    is_fairseq_checkpoint,
    model_from_fairseq,
    model_from_transformers,
    read_torch_file,
)

SSL_DEFAULT_BUNDLES = {"hubert": "HUBERT_BASE", "wav2vec2": "WAV2VEC2_BASE"}
_CONV_WINDOW = 400  # receptive field of the wav2vec2/HuBERT conv feature encoder, in samples


@dataclass
class MFCCExtractor:
    """MFCC + deltas + delta-deltas (``3 * n_mfcc`` dims) from torchaudio, 25 ms windows."""

    n_mfcc: int = 13
    n_mels: int = 40
    n_fft: int = 512
    win_length: int = 400
    delta_win: int = 5
    kind: str = field(default="mfcc", init=False)

    def __post_init__(self) -> None:
        if not 1 <= self.n_mfcc <= self.n_mels:
            raise ValueError(f"n_mfcc must be in [1, n_mels={self.n_mels}], got {self.n_mfcc}")
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length ({self.win_length}) must be <= n_fft ({self.n_fft})")
        self._mfcc = torchaudio.transforms.MFCC(
            sample_rate=SEMANTIC_SAMPLE_RATE, n_mfcc=self.n_mfcc,
            melkwargs={"n_fft": self.n_fft, "win_length": self.win_length,
                       "hop_length": SEMANTIC_HOP, "n_mels": self.n_mels, "center": True})

    @property
    def dim(self) -> int:
        return 3 * self.n_mfcc

    def config(self) -> dict[str, Any]:
        return {"kind": "mfcc", "n_mfcc": self.n_mfcc, "n_mels": self.n_mels, "n_fft": self.n_fft,
                "win_length": self.win_length, "delta_win": self.delta_win}

    def __call__(self, audio: np.ndarray, sample_rate: int = SEMANTIC_SAMPLE_RATE) -> np.ndarray:
        """(frames, dim) float32 features of 16 kHz mono ``audio``."""
        check_sample_rate(sample_rate, SEMANTIC_SAMPLE_RATE)
        x = mono_float32(audio)
        frames = semantic_frame_count(len(x))
        if len(x) < self.n_fft:  # centred framing reflects n_fft // 2 samples at each side
            x = np.pad(x, (0, self.n_fft - len(x)))
        with torch.inference_mode():
            mfcc = self._mfcc(torch.from_numpy(x))  # (n_mfcc, len // hop + 1)
            d1 = torchaudio.functional.compute_deltas(mfcc, win_length=self.delta_win)
            d2 = torchaudio.functional.compute_deltas(d1, win_length=self.delta_win)
            feats = torch.cat([mfcc, d1, d2], dim=0)[:, :frames].T
        return np.ascontiguousarray(feats.numpy(), dtype=np.float32)


def _bundle(name: str):
    bundle = getattr(torchaudio.pipelines, name, None)
    if bundle is None or not hasattr(bundle, "_params"):
        raise ValueError(f"{name!r} is not a torchaudio wav2vec2-family bundle "
                         f"(e.g. HUBERT_BASE, WAV2VEC2_BASE, WAV2VEC2_XLSR53)")
    return bundle


def expected_ssl_checkpoint(bundle: str) -> Path:
    """Where torchaudio's ``bundle.get_model()`` caches the weights: torch hub's checkpoints dir."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(_bundle(bundle)._path)


def build_ssl_model(bundle: str, model_params: dict[str, Any] | None = None) -> torch.nn.Module:
    """The architecture of ``bundle`` (or ``model_params`` for ``wav2vec2_model``), random weights."""
    b = _bundle(bundle)
    if model_params is not None:
        return torchaudio.models.wav2vec2_model(**model_params)
    factories = {"Wav2Vec2": torchaudio.models.wav2vec2_model,
                 "WavLM": torchaudio.models.wavlm_model}
    return factories[b._model_type](**b._params)


def load_ssl_weights(bundle: str = "HUBERT_BASE", checkpoint: str | Path | None = None,
                     model_params: dict[str, Any] | None = None
                     ) -> tuple[torch.nn.Module, str, bool]:
    """``(model, weights_format, normalize_waveform)`` from ``checkpoint`` or torch hub's cache;
    never downloads. ``checkpoint`` is a torchaudio state dict of ``bundle`` (or of
    ``model_params``), a fairseq checkpoint (``hubert_base_ls960.pt``) or a transformers model
    folder; the format is recognised from the file. Raises FileNotFoundError naming the expected
    path, ValueError naming a file that holds something else."""
    path = Path(checkpoint) if checkpoint is not None else expected_ssl_checkpoint(bundle)
    if path.is_dir():
        model, normalize = model_from_transformers(path)
        return model, "transformers", normalize
    if not path.is_file():
        url = f"https://download.pytorch.org/torchaudio/models/{os.path.basename(_bundle(bundle)._path)}"
        raise FileNotFoundError(
            f"no weights for {bundle} at {str(path)!r}. Download {url} (or fairseq's "
            f"hubert_base_ls960.pt, or a transformers HubertModel folder) on a connected machine "
            f"and put it there (torch hub's cache, $TORCH_HOME/hub/checkpoints) or pass its path "
            f"as `checkpoint`.")
    state = read_torch_file(path)
    if is_fairseq_checkpoint(state):
        model, normalize = model_from_fairseq(state, path)
        return model, "fairseq", normalize
    model = build_ssl_model(bundle, model_params)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as err:
        raise ValueError(f"{str(path)!r} does not hold {bundle} weights: {err}") from err
    return model.eval(), "torchaudio", bool(_bundle(bundle)._normalize_waveform)


def load_ssl_model(bundle: str = "HUBERT_BASE", checkpoint: str | Path | None = None,
                   model_params: dict[str, Any] | None = None) -> torch.nn.Module:
    """The model of :func:`load_ssl_weights`."""
    return load_ssl_weights(bundle, checkpoint, model_params)[0]


@dataclass
class SSLExtractor:
    """Outputs of transformer layer ``layer`` (1-based, after that layer's own norms: fairseq's
    ``output_layer``, transformers' ``hidden_states[layer]``) of a HuBERT / wav2vec2 model."""

    kind: str = "hubert"
    layer: int = 9
    bundle: str | None = None
    checkpoint: str | None = None
    model_params: dict[str, Any] | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.kind not in SSL_DEFAULT_BUNDLES:
            raise ValueError(f"kind must be one of {tuple(SSL_DEFAULT_BUNDLES)}, got {self.kind!r}")
        self.bundle = self.bundle or SSL_DEFAULT_BUNDLES[self.kind]
        _bundle(self.bundle)
        model, self.weights_format, self._normalize = load_ssl_weights(
            self.bundle, self.checkpoint, self.model_params)
        n_layers = len(model.encoder.transformer.layers)
        if not 1 <= self.layer <= n_layers:
            raise ValueError(f"layer must be in [1, {n_layers}] for these {self.kind} weights "
                             f"({self.weights_format}), got {self.layer}")
        self._dim = int(model.encoder.feature_projection.projection.out_features)
        self.model = model.to(self.device)

    @property
    def dim(self) -> int:
        return self._dim

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "layer": self.layer, "bundle": self.bundle,
                "checkpoint": self.checkpoint, "weights_format": self.weights_format}

    def __call__(self, audio: np.ndarray, sample_rate: int = SEMANTIC_SAMPLE_RATE) -> np.ndarray:
        """(frames, dim) float32 features of 16 kHz mono ``audio``."""
        check_sample_rate(sample_rate, SEMANTIC_SAMPLE_RATE)
        x = mono_float32(audio)
        frames = semantic_frame_count(len(x))
        # (len - 400) // 320 + 1 conv frames: pad so that the count is semantic_frame_count(len)
        total = max(len(x) + _CONV_WINDOW - SEMANTIC_HOP, _CONV_WINDOW)
        wave = torch.from_numpy(np.pad(x, (0, total - len(x))))[None].to(self.device)
        with torch.inference_mode():
            if self._normalize:
                wave = torch.nn.functional.layer_norm(wave, wave.shape)
            layers, _ = self.model.extract_features(wave, num_layers=self.layer)
        feats = layers[self.layer - 1][0].float().cpu().numpy()
        if feats.shape[0] != frames:
            raise RuntimeError(f"{self.bundle} gave {feats.shape[0]} frames, expected {frames}")
        return feats


FEATURE_KINDS = ("mfcc", "hubert", "wav2vec2")


def build_feature_extractor(kind: str = "mfcc", **options: Any) -> MFCCExtractor | SSLExtractor:
    """``mfcc`` (options: n_mfcc, n_mels, n_fft, win_length, delta_win) or ``hubert`` /
    ``wav2vec2`` (options: layer, bundle, checkpoint, model_params, device)."""
    if kind == "mfcc":
        return MFCCExtractor(**options)
    if kind in SSL_DEFAULT_BUNDLES:
        return SSLExtractor(kind=kind, **options)
    raise ValueError(f"unknown semantic feature kind {kind!r}; choose one of {FEATURE_KINDS}")
