"""An offline codec in Bark's token layout: log-mel frames quantized by a residual VQ.

No downloaded weights: 24 kHz audio -> log-mel frames (hop 320, so 75 Hz like EnCodec) ->
8 residual levels of 1024-entry k-means codebooks fitted on training audio (the project's JAX
k-means, :class:`~bark_kedro.tokenizers.kmeans.KMeansQuantizer`) -> int16 codes
``(8, ceil(n / 320))``. Codebooks 0-1 carry most of the spectrum (Bark's coarse stage), 2-7
the residual detail (the fine stage). Decoding sums the codebook vectors, inverts the mel
filterbank (torchaudio ``InverseMelScale``) and recovers a phase with Griffin-Lim
(torchaudio ``GriffinLim``). It keeps speech intelligible, not natural: EnCodec stays the
codec of real work and of the official checkpoints.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
import torchaudio
from tqdm.auto import tqdm

from bark_kedro.tokenizers._checks import check_sample_rate, mono_float32
from bark_kedro.tokenizers.frames import CODEC_HOP, CODEC_SAMPLE_RATE, codec_frame_count
from bark_kedro.tokenizers.kmeans import KMeansQuantizer

logger = logging.getLogger(__name__)

CODEC_KIND = "mel_rvq"
WEIGHTS_SOURCE = "mel_rvq"  # what ``weights_source`` (and the MLflow tag codec_weights) says
FORMAT_VERSION = 1
_LOG_FLOOR = 1e-5  # mel amplitude floor (-100 dB) before the log


@dataclass(frozen=True)
class MelCodecConfig:
    """Analysis, fitting and decoding settings of :class:`MelCodec`.

    ``n_codebooks`` x ``codebook_size`` is Bark's layout (8 x 1024). The k-means of each level
    runs on at most ``max_fit_frames`` training frames for at most ``kmeans_iters`` Lloyd
    iterations (k-means++ on ``init_sample`` frames); ``griffin_lim_iters`` phase iterations
    decode.
    """

    n_mels: int = 100
    n_fft: int = 1280
    f_max: float = 12_000.0
    n_codebooks: int = 8
    codebook_size: int = 1024
    max_fit_frames: int = 16_000
    kmeans_iters: int = 10
    init_sample: int = 4096
    griffin_lim_iters: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_mels", "n_fft", "f_max", "n_codebooks", "codebook_size",
                     "max_fit_frames", "kmeans_iters", "init_sample", "griffin_lim_iters"):
            if getattr(self, name) <= 0:
                raise ValueError(f"MelCodecConfig.{name}={getattr(self, name)!r}: must be > 0")
        if self.n_fft < CODEC_HOP:
            raise ValueError(f"MelCodecConfig.n_fft={self.n_fft}: must be >= the hop {CODEC_HOP}")
        if self.f_max > CODEC_SAMPLE_RATE / 2:
            raise ValueError(f"MelCodecConfig.f_max={self.f_max}: must be <= "
                             f"{CODEC_SAMPLE_RATE // 2} Hz (Nyquist)")
        if self.codebook_size > 2**15:
            raise ValueError(f"MelCodecConfig.codebook_size={self.codebook_size}: codes are int16")


class MelCodec:
    """24 kHz mono float32 audio <-> int16 codes (n_codebooks, ceil(n / 320)).

    Same interface as :class:`~bark_kedro.tokenizers.codec.CodecTokenizer` (``encode``,
    ``encode_batch``, ``decode``, ``save``, ``with_options``, ``weights_source``,
    ``n_codebooks``). Build one with :meth:`fit` (on training clips) or :meth:`load`.
    """

    codec_kind = CODEC_KIND
    weights_source = WEIGHTS_SOURCE

    def __init__(self, config: MelCodecConfig, mean: np.ndarray, scale: np.ndarray,
                 codebooks: np.ndarray, fit_frames: int = 0):
        codebooks = np.asarray(codebooks, np.float32)
        expected = (config.n_codebooks, config.codebook_size, config.n_mels)
        if codebooks.shape != expected:
            raise ValueError(f"codebooks must have shape {expected}, got {codebooks.shape}")
        if np.shape(mean) != (config.n_mels,) or np.shape(scale) != (config.n_mels,):
            raise ValueError(f"mean and scale must have shape ({config.n_mels},)")
        self.config = config
        self.mean = np.asarray(mean, np.float32)
        self.scale = np.asarray(scale, np.float32)
        self.codebooks = codebooks
        self.fit_frames = int(fit_frames)
        self.device = "cpu"
        self.n_codebooks = config.n_codebooks

    def describe(self) -> str:
        c = self.config
        return (f"mel residual VQ ({c.n_codebooks} x {c.codebook_size}, {c.n_mels} mel bins, "
                f"fitted on {self.fit_frames} train frames; Griffin-Lim {c.griffin_lim_iters} "
                f"iterations)")

    # ---- analysis -----------------------------------------------------------------------------
    @cached_property
    def _mel(self) -> torchaudio.transforms.MelSpectrogram:
        c = self.config
        return torchaudio.transforms.MelSpectrogram(
            sample_rate=CODEC_SAMPLE_RATE, n_fft=c.n_fft, hop_length=CODEC_HOP, f_max=c.f_max,
            n_mels=c.n_mels, power=1.0, center=True, pad_mode="constant", norm="slaney",
            mel_scale="slaney")

    @cached_property
    def _inverse(self) -> torchaudio.transforms.InverseMelScale:
        c = self.config
        return torchaudio.transforms.InverseMelScale(
            n_stft=c.n_fft // 2 + 1, n_mels=c.n_mels, sample_rate=CODEC_SAMPLE_RATE,
            f_max=c.f_max, norm="slaney", mel_scale="slaney")

    def log_mel(self, audio: np.ndarray, name: str = "audio") -> np.ndarray:
        """``(codec_frame_count(len(audio)), n_mels)`` natural-log mel amplitudes."""
        return _log_mel(self._mel, audio, name)

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def fit(cls, audios: Sequence[np.ndarray], config: MelCodecConfig | None = None,
            progress: bool = False) -> MelCodec:
        """Fit the residual codebooks on 24 kHz training clips (a seeded random subset of at
        most ``config.max_fit_frames`` frames)."""
        config = config or MelCodecConfig()
        if audios is None or len(audios) == 0:
            raise ValueError("the mel codec needs training clips (24 kHz) to fit its codebooks")
        probe = cls(config, np.zeros(config.n_mels), np.ones(config.n_mels),
                    np.zeros((config.n_codebooks, config.codebook_size, config.n_mels)))
        frames = np.concatenate([probe.log_mel(a, f"training clip {i}")
                                 for i, a in enumerate(audios)])
        if len(frames) > config.max_fit_frames:
            keep = np.random.default_rng(config.seed).choice(len(frames), config.max_fit_frames,
                                                             replace=False)
            frames = frames[np.sort(keep)]
        if len(frames) < config.codebook_size:
            raise ValueError(f"the mel codec needs at least {config.codebook_size} training frames "
                             f"({config.codebook_size / 75:.1f} s of audio), got {len(frames)}")
        mean = frames.mean(axis=0)
        scale = np.maximum(frames.std(axis=0), 1e-3)
        residual = ((frames - mean) / scale).astype(np.float32)
        codebooks = []
        for level in tqdm(range(config.n_codebooks), desc="mel codec k-means", unit="level",
                          disable=not progress):
            quantizer = KMeansQuantizer(config.codebook_size, max_iter=config.kmeans_iters,
                                        seed=config.seed + level, init_sample=config.init_sample,
                                        standardize=False).fit(residual)
            residual = residual - quantizer.centers[quantizer.predict(residual)]
            codebooks.append(quantizer.centers)
        logger.info("mel codec fitted on %d frames: residual RMS %.3f of the normalised "
                    "log-mel after %d levels", len(frames), float(np.sqrt(np.mean(residual**2))),
                    config.n_codebooks)
        return cls(config, mean, scale, np.stack(codebooks), fit_frames=len(frames))

    def with_options(self, **options) -> MelCodec:
        """This codec: it runs on the CPU, and EnCodec's device and batching options do not
        apply to it."""
        return self

    def save(self, path: str | Path) -> None:
        """``torch.save`` a dict of tensors and the config (read back by :meth:`load`)."""
        torch.save({"codec": CODEC_KIND, "format_version": FORMAT_VERSION,
                    "weights_source": WEIGHTS_SOURCE, "config": asdict(self.config),
                    "fit_frames": self.fit_frames, "mean": torch.from_numpy(self.mean),
                    "scale": torch.from_numpy(self.scale),
                    "codebooks": torch.from_numpy(self.codebooks)}, path)

    @classmethod
    def from_state(cls, state: dict, source: str = "state", **options) -> MelCodec:
        """The codec in a dict :meth:`save` wrote; ``options`` (EnCodec's, e.g. ``device``)
        do not apply."""
        if state.get("codec") != CODEC_KIND or state.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{source} is not a mel codec file of format {FORMAT_VERSION}")
        return cls(MelCodecConfig(**state["config"]), state["mean"].numpy(),
                   state["scale"].numpy(), state["codebooks"].numpy(),
                   fit_frames=int(state.get("fit_frames", 0)))

    @classmethod
    def load(cls, path: str | Path, **options) -> MelCodec:
        """A codec written by :meth:`save`."""
        if not Path(path).is_file():
            raise FileNotFoundError(f"mel codec file {str(path)!r} does not exist")
        return cls.from_state(torch.load(path, map_location="cpu", weights_only=True),
                              repr(str(path)), **options)

    # ---- encoding -----------------------------------------------------------------------------
    def encode_batch(self, audios: Sequence[np.ndarray], sample_rate: int = CODEC_SAMPLE_RATE,
                     progress: bool = False) -> list[np.ndarray]:
        """int16 codes (n_codebooks, codec_frame_count(len(audio))) for every 24 kHz clip."""
        check_sample_rate(sample_rate, CODEC_SAMPLE_RATE)
        if len(audios) == 0:
            return []
        mels = [self.log_mel(a, f"clip {i}") for i, a in
                enumerate(tqdm(audios, desc="mel codec", unit="clip", disable=not progress))]
        residual = ((np.concatenate(mels) - self.mean) / self.scale).astype(np.float32)
        codes = np.empty((self.n_codebooks, len(residual)), np.int16)
        for level, centers in enumerate(self.codebooks):
            codes[level] = _nearest(residual, centers)
            residual = residual - centers[codes[level]]
        bounds = np.cumsum([0] + [len(m) for m in mels])
        return [codes[:, a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    def encode(self, audio: np.ndarray, sample_rate: int = CODEC_SAMPLE_RATE) -> np.ndarray:
        """int16 codes (n_codebooks, frames) of one 24 kHz clip."""
        return self.encode_batch([audio], sample_rate)[0]

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """24 kHz float32 audio (frames * 320,) of codes (n_q, frames); a batch (b, n_q, frames)
        gives (b, frames * 320). Fewer than ``n_codebooks`` levels decode coarser audio."""
        arr = np.asarray(codes)
        single = arr.ndim == 2
        arr = arr[None] if single else arr
        if arr.ndim != 3 or not 1 <= arr.shape[1] <= self.n_codebooks or arr.shape[2] == 0:
            raise ValueError(f"codes must have shape (n_q, frames) or (batch, n_q, frames) with "
                             f"1 <= n_q <= {self.n_codebooks}, got {np.asarray(codes).shape}")
        if arr.min() < 0 or arr.max() >= self.config.codebook_size:
            raise ValueError(f"codes must lie in [0, {self.config.codebook_size}), got "
                             f"[{arr.min()}, {arr.max()}]")
        arr = arr.astype(np.int64)
        levels = np.arange(arr.shape[1])[None, :, None]
        normalised = self.codebooks[levels, arr].sum(axis=1)  # (b, frames, n_mels)
        log_mel = normalised * self.scale + self.mean
        c = self.config
        with torch.inference_mode():
            mel = torch.from_numpy(np.exp(log_mel)).float().transpose(1, 2)  # (b, n_mels, frames)
            spectrum = self._inverse(mel).clamp_min(0.0)
            # one more frame: the centred analysis of frames * 320 samples has frames + 1
            spectrum = torch.cat([spectrum, spectrum[..., -1:]], dim=-1)
            audio = torchaudio.functional.griffinlim(
                spectrum, torch.hann_window(c.n_fft), n_fft=c.n_fft, hop_length=CODEC_HOP,
                win_length=c.n_fft, power=1.0, n_iter=c.griffin_lim_iters, momentum=0.99,
                length=arr.shape[2] * CODEC_HOP, rand_init=False)
        out = audio.numpy().astype(np.float32)
        return out[0] if single else out


def _log_mel(transform: torchaudio.transforms.MelSpectrogram, audio: np.ndarray,
             name: str) -> np.ndarray:
    x = mono_float32(audio, name)
    if len(x) == 0:
        raise ValueError(f"{name} is empty: the codec needs at least one sample")
    frames = codec_frame_count(len(x))
    x = np.pad(x, (0, frames * CODEC_HOP - len(x)))  # whole frames; centred STFT adds one
    with torch.no_grad():
        mel = transform(torch.from_numpy(x))[:, :frames]
    return np.log(mel.clamp_min(_LOG_FLOOR).T.numpy()).astype(np.float32)


def _nearest(x: np.ndarray, centers: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """Index of the nearest row of ``centers`` for every row of ``x`` (ties: lowest index)."""
    c_sq = np.sum(centers * centers, axis=1)
    out = np.empty(len(x), np.int64)
    for start in range(0, len(x), chunk):
        part = x[start:start + chunk]
        out[start:start + chunk] = np.argmin(c_sq[None] - 2.0 * part @ centers.T, axis=1)
    return out
