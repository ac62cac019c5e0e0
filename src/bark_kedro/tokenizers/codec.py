"""Codec tokens: EnCodec 24 kHz at 6 kbps (8 codebooks x 1024, 75 Hz), via the ``encodec`` package.

Weights come from torch hub's cache (``pretrained``, never downloaded), a state-dict file
(``local``) or are ``random``: a randomly initialised model whose codebooks are initialised by
EnCodec's own k-means on training audio. Random weights are a stand-in that says nothing about speech; they
are used only when asked for. ``weights_source`` says which one a tokenizer uses so that callers
can flag it. ``auto`` (in :func:`load_codec`) takes the pretrained weights when they are cached,
else the offline mel codec (:mod:`bark_kedro.tokenizers.mel_codec`, same token layout), and
logs which. :func:`load_codec_file` reads either codec's saved file.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from encodec import EncodecModel
from encodec.quantization import core_vq

from bark_kedro.progress import progress_bar
from bark_kedro.tokenizers._checks import check_sample_rate
from bark_kedro.tokenizers.codec_encoder import (
    ParallelEncoder,
    Piece,
    pieces_of,
    run_padded,
    worker_groups,
)
from bark_kedro.tokenizers.frames import CODEC_HOP, CODEC_SAMPLE_RATE
from bark_kedro.tokenizers.mel_codec import CODEC_KIND as MEL_CODEC_KIND
from bark_kedro.tokenizers.mel_codec import MelCodec, MelCodecConfig

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "encodec_24khz-d7cc33bc.th"
CHECKPOINT_URL = f"https://dl.fbaipublicfiles.com/encodec/v0/{CHECKPOINT_NAME}"
BANDWIDTH = 6.0
CODEBOOK_SIZE = 1024
WEIGHT_SOURCES = ("pretrained", "local", "random")
WEIGHT_MODES = ("auto", *WEIGHT_SOURCES, "mel")


def expected_codec_checkpoint() -> Path:
    """Where ``EncodecModel.encodec_model_24khz(pretrained=True)`` caches its weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / CHECKPOINT_NAME


def _default_batch_seconds(device: str) -> float:
    return 8.0 if torch.device(device).type == "cpu" else 320.0


def _new_model() -> EncodecModel:
    with warnings.catch_warnings():  # encodec uses the deprecated torch weight_norm
        warnings.simplefilter("ignore", FutureWarning)
        return EncodecModel.encodec_model_24khz(pretrained=False)


def _kmeans_bounded(samples: torch.Tensor, num_clusters: int, num_iters: int = 10,
                    chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """EnCodec's ``core_vq.kmeans`` (same init, updates and return values), with distances
    computed ``chunk`` rows at a time instead of one (n, clusters, dim) tensor."""
    means = core_vq.sample_vectors(samples, num_clusters)
    bins = torch.zeros(num_clusters, dtype=torch.long, device=samples.device)
    for _ in range(num_iters):
        m_sq = means.pow(2).sum(1)
        buckets = torch.cat([(m_sq[None] - 2 * part @ means.T).argmin(1)
                             for part in samples.split(chunk)])
        bins = torch.bincount(buckets, minlength=num_clusters)
        sums = torch.zeros_like(means).index_add_(0, buckets, samples)
        new_means = sums / bins.clamp(min=1)[:, None].to(samples.dtype)
        means = torch.where((bins == 0)[:, None], means, new_means)
    return means, bins


def _encoder_frames(model: EncodecModel, pieces: list[Piece], device: str) -> torch.Tensor:
    """Encoder outputs of all pieces as rows (frames, dim); on CPU through the parallel path."""
    if torch.device(device).type == "cpu":
        encoder = ParallelEncoder(model, 0)
        groups = [[p[2] for p in pieces[i:i + 16]] for i in range(0, len(pieces), 16)]
        workers = min(torch.get_num_threads(), os.cpu_count() or 1)
        return torch.cat([e.T for out in encoder.map(encoder.embed_group, groups, workers)
                          for e in out])
    batch_samples = int(_default_batch_seconds(device) * CODEC_SAMPLE_RATE)
    out = run_padded(pieces, model.encoder, device, 16, batch_samples)
    return torch.cat([out[k].T for k in range(len(pieces))])


class CodecTokenizer:
    """24 kHz mono float32 audio <-> int16 codes (n_codebooks, frames), frames = ceil(n / 320).

    Clips are cut into chunks of at most ``max_chunk_seconds`` (encoded independently), sorted
    by length and encoded ``batch_size`` at a time (at most ``max_batch_seconds`` of padded audio
    per batch), zero-padded to whole frames and trimmed back to each clip's frame count.
    ``max_batch_seconds=None`` picks 8 s on CPU, where EnCodec's convolutions are bound by
    memory traffic and bigger batches run slower than single clips, and 320 s elsewhere.

    On CPU, ``cpu_workers`` threads (None: one per core torch uses) encode groups of at most
    ``batch_size`` clips of similar length, at least two groups per thread (so that all of them
    work): convolutions clip by clip, the LSTM and quantizer as a batch (see
    :mod:`bark_kedro.tokenizers.codec_encoder`); ``cpu_workers=0`` runs padded batches through
    the whole model instead, as on GPUs.
    """

    codec_kind = "encodec"

    def __init__(self, model: EncodecModel, weights_source: str, bandwidth: float = BANDWIDTH,
                 device: str = "cpu", batch_size: int = 16, max_batch_seconds: float | None = None,
                 max_chunk_seconds: float = 30.0, cpu_workers: int | None = None):
        if weights_source not in WEIGHT_SOURCES:
            raise ValueError(f"weights_source must be one of {WEIGHT_SOURCES}, got {weights_source!r}")
        self.options = {"bandwidth": bandwidth, "device": device, "batch_size": batch_size,
                        "max_batch_seconds": max_batch_seconds,
                        "max_chunk_seconds": max_chunk_seconds, "cpu_workers": cpu_workers}
        if max_batch_seconds is None:
            max_batch_seconds = _default_batch_seconds(device)
        if batch_size < 1 or max_batch_seconds <= 0 or max_chunk_seconds <= 0:
            raise ValueError("batch_size, max_batch_seconds and max_chunk_seconds must be > 0")
        if cpu_workers is not None and cpu_workers < 0:
            raise ValueError(f"cpu_workers must be >= 0 (or None), got {cpu_workers}")
        self.cpu_workers = (min(torch.get_num_threads(), os.cpu_count() or 1)
                            if cpu_workers is None else int(cpu_workers))
        self._parallel: ParallelEncoder | None = None
        model.set_target_bandwidth(bandwidth)
        self.model = model.eval().to(device)
        self.weights_source = weights_source
        self.device = device
        self.batch_size = int(batch_size)
        self.max_batch_samples = int(max_batch_seconds * CODEC_SAMPLE_RATE)
        self.chunk_samples = max(1, round(max_chunk_seconds * CODEC_SAMPLE_RATE / CODEC_HOP)) * CODEC_HOP
        self.n_codebooks = model.quantizer.get_num_quantizers_for_bandwidth(model.frame_rate, bandwidth)
        layers = model.quantizer.vq.layers[: self.n_codebooks]
        if not all(bool(layer._codebook.inited) for layer in layers):
            raise ValueError("the EnCodec codebooks are not initialised (they would map all audio to "
                             "code 0): use CodecTokenizer.random(init_audio=...) or real weights")

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def pretrained(cls, **options) -> CodecTokenizer:
        """The official weights, only if they already sit in torch hub's cache."""
        path = expected_codec_checkpoint()
        if not path.is_file():
            raise FileNotFoundError(
                f"pretrained EnCodec weights are not in torch hub's cache ({path}). Download "
                f"{CHECKPOINT_URL} on a connected machine and put it there, or pass a local "
                f"checkpoint path instead.")
        model = _new_model()
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        model.name = "encodec_24khz"
        return cls(model, "pretrained", **options)

    @classmethod
    def from_checkpoint(cls, path: str | Path, **options) -> CodecTokenizer:
        """Weights from a state-dict file (the official ``.th`` format, or one :meth:`save` wrote;
        the latter keeps its ``weights_source``, so a saved random codec stays ``random``)."""
        state = _load_state_file(path)
        source = "local"
        if isinstance(state, dict) and "state_dict" in state:
            source = state.get("weights_source", "local")
            state = state["state_dict"]
        model = _new_model()
        try:
            model.load_state_dict(state)
        except (RuntimeError, AttributeError, TypeError) as err:
            raise ValueError(f"{str(path)!r} is not an EnCodec 24 kHz state dict: {err}") from err
        return cls(model, source if source in WEIGHT_SOURCES else "local", **options)

    @classmethod
    def random(cls, init_audio: Sequence[np.ndarray], seed: int = 0, kmeans_iters: int = 50,
               max_init_frames: int = 8192, **options) -> CodecTokenizer:
        """Random EnCodec weights; codebooks initialised by EnCodec's k-means on ``init_audio``.

        The encoder's frames of ``init_audio`` (at most ``max_init_frames``, a seeded random
        subset) run once through the residual quantizer in eval mode: each codebook's
        ``init_embed_`` clusters its residuals (``kmeans_iters`` iterations), the library's own
        initialisation. Use well over 1024 frames (~14 s): with fewer, the first codebook
        memorises the frames and the residuals left for the next ones are zero.
        """
        if init_audio is None or len(init_audio) == 0:
            raise ValueError("weights='random' needs init_audio (training clips at 24 kHz) to "
                             "initialise the codebooks")
        device = torch.device(options.get("device", "cpu"))
        cuda = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):  # sample_vectors draws on the model's device
            torch.manual_seed(seed)
            model = _new_model().eval().to(device)
            model.set_target_bandwidth(options.get("bandwidth", BANDWIDTH))
            pieces = pieces_of(init_audio, 30 * CODEC_SAMPLE_RATE)
            frames = _encoder_frames(model, pieces, device).to(device)  # (n, dim)
            if len(frames) > max_init_frames:
                frames = frames[torch.randperm(len(frames))[:max_init_frames].to(device)]
            if len(frames) < 2 * CODEBOOK_SIZE:
                logger.warning("initialising %d-entry EnCodec codebooks from only %d frames; the "
                               "later codebooks will be nearly constant", CODEBOOK_SIZE, len(frames))
            n_q = model.quantizer.get_num_quantizers_for_bandwidth(model.frame_rate, model.bandwidth)
            for layer in model.quantizer.vq.layers:
                layer._codebook.kmeans_iters = int(kmeans_iters)
            with torch.no_grad(), mock.patch.object(core_vq, "kmeans", _kmeans_bounded):
                model.quantizer.vq(frames.T[None], n_q=n_q)  # runs init_embed_ layer by layer
        logger.warning("EnCodec uses RANDOM weights (codebooks k-means-initialised on %d frames): "
                       "codec tokens and decoded audio are not those of the real codec", len(frames))
        return cls(model, "random", **options)

    def with_options(self, **options) -> CodecTokenizer:
        """A tokenizer sharing this one's model, with some constructor options changed."""
        return CodecTokenizer(self.model, self.weights_source, **{**self.options, **options})

    def save(self, path: str | Path) -> None:
        """Write ``{"weights_source", "state_dict"}`` with ``torch.save`` (see from_checkpoint)."""
        torch.save({"weights_source": self.weights_source,
                    "state_dict": self.model.state_dict()}, path)

    # ---- encoding -----------------------------------------------------------------------------
    def encode_batch(self, audios: Sequence[np.ndarray], sample_rate: int = CODEC_SAMPLE_RATE,
                     progress: bool = False) -> list[np.ndarray]:
        """int16 codes (n_codebooks, codec_frame_count(len(audio))) for every 24 kHz clip."""
        check_sample_rate(sample_rate, CODEC_SAMPLE_RATE)
        pieces = pieces_of(audios, self.chunk_samples)
        model = self.model

        def step(x):
            codes = model.quantizer.encode(model.encoder(x), model.frame_rate, model.bandwidth)
            return codes.transpose(0, 1)  # (batch, n_q, frames)

        if torch.device(self.device).type == "cpu" and self.cpu_workers > 0:
            out = self._run_parallel(pieces, progress)
        else:
            out = run_padded(pieces, step, self.device, self.batch_size, self.max_batch_samples,
                       progress)
        codes: list[list[torch.Tensor]] = [[] for _ in audios]
        for k, (i, _, _) in enumerate(pieces):
            codes[i].append(out[k])
        return [torch.cat(c, dim=-1).numpy().astype(np.int16) for c in codes]

    def _run_parallel(self, pieces: list[Piece], progress: bool) -> dict[int, torch.Tensor]:
        if self._parallel is None:
            self._parallel = ParallelEncoder(self.model, self.n_codebooks)
        groups = worker_groups([len(p[2]) for p in pieces], self.batch_size, self.cpu_workers)
        total = sum(len(p[2]) for p in pieces) / CODEC_SAMPLE_RATE
        results = self._parallel.map(self._parallel.encode_group,
                                     [[pieces[k][2] for k in g] for g in groups],
                                     self.cpu_workers)
        out = {}
        with progress_bar(total=total, unit="audio-s", disable=not progress, nested=True,
                  desc="EnCodec") as bar:
            for group, codes in zip(groups, results, strict=True):
                out.update(zip(group, codes, strict=True))
                bar.update(round(sum(len(pieces[k][2]) for k in group) / CODEC_SAMPLE_RATE, 2))
        return out

    def encode(self, audio: np.ndarray, sample_rate: int = CODEC_SAMPLE_RATE) -> np.ndarray:
        """int16 codes (n_codebooks, frames) of one 24 kHz clip."""
        return self.encode_batch([audio], sample_rate)[0]

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """24 kHz float32 audio (frames * 320,) of codes (n_q, frames); a batch (b, n_q, frames)
        gives (b, frames * 320)."""
        arr = np.asarray(codes)
        single = arr.ndim == 2
        arr = arr[None] if single else arr
        n_layers = len(self.model.quantizer.vq.layers)
        if arr.ndim != 3 or not 1 <= arr.shape[1] <= n_layers or arr.shape[2] == 0:
            raise ValueError(f"codes must have shape (n_q, frames) or (batch, n_q, frames) with "
                             f"1 <= n_q <= {n_layers}, got {np.asarray(codes).shape}")
        if arr.min() < 0 or arr.max() >= CODEBOOK_SIZE:
            raise ValueError(f"codes must lie in [0, {CODEBOOK_SIZE}), got [{arr.min()}, {arr.max()}]")
        with torch.inference_mode():
            q = torch.from_numpy(arr.astype(np.int64)).to(self.device).transpose(0, 1)
            audio = self.model.decoder(self.model.quantizer.decode(q))[:, 0].float().cpu().numpy()
        return audio[0] if single else audio


def _load_state_file(path: str | Path) -> object:
    """``torch.load`` of a checkpoint file; a file that is not one (e.g. ``/etc/passwd``) is a
    ValueError naming it."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"EnCodec checkpoint {str(path)!r} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises anything from a foreign file
        raise ValueError(f"{str(path)!r} is not an EnCodec state dict (a torch checkpoint file): "
                         f"torch.load failed with {type(err).__name__}: {err}") from err


Codec = CodecTokenizer | MelCodec


def load_codec(weights: str = "auto", checkpoint: str | Path | None = None,
               init_audio: Sequence[np.ndarray] | None = None,
               mel: MelCodecConfig | None = None, **options) -> Codec:
    """``weights``: 'pretrained' (torch hub cache), 'local' (``checkpoint``), 'random'
    (needs ``init_audio``; options ``seed``, ``kmeans_iters``, ``max_init_frames``), 'mel' (the
    offline mel codec with config ``mel``, fitted on ``init_audio``) or 'auto' (pretrained
    when cached, else 'mel'; logged); the other options (``device``, ``batch_size``, ...) go to
    :class:`CodecTokenizer`."""
    random_options = ("seed", "kmeans_iters", "max_init_frames")
    weights = resolve_weights(weights)
    if weights == "mel":
        return MelCodec.fit(init_audio, mel, progress=True)
    if weights != "random":
        options = {k: v for k, v in options.items() if k not in random_options}
    if weights == "pretrained":
        return CodecTokenizer.pretrained(**options)
    if weights == "local":
        if checkpoint is None:
            raise ValueError("weights='local' needs a checkpoint path")
        return CodecTokenizer.from_checkpoint(checkpoint, **options)
    if weights == "random":
        logger.warning("codec weights 'random' (asked for): EnCodec with RANDOM weights; its "
                       "audio is not speech and its MCD / codec-token accuracy say nothing")
        return CodecTokenizer.random(init_audio, **options)
    raise ValueError(f"weights must be one of {WEIGHT_MODES}, got {weights!r}")


def resolve_weights(weights: str, log: bool = True) -> str:
    """``weights`` with 'auto' resolved (logged): 'pretrained' when EnCodec's weights are in
    torch hub's cache, else 'mel' (the offline mel codec)."""
    if weights != "auto":
        return weights
    if expected_codec_checkpoint().is_file():
        if log:
            logger.info("codec weights 'auto': using the pretrained EnCodec weights in %s",
                    expected_codec_checkpoint())
        return "pretrained"
    if log:
        logger.warning("codec weights 'auto': no pretrained EnCodec weights at %s, so the codec "
                       "is the offline mel residual-VQ codec (fitted on the train split, "
                       "Griffin-Lim decoder): speech-like, not EnCodec",
                       expected_codec_checkpoint())
    return "mel"


def load_codec_file(path: str | Path, **options) -> Codec:
    """The codec in a saved ``codec_model`` file: a :class:`MelCodec` (its own format) or an
    EnCodec state dict (:meth:`CodecTokenizer.from_checkpoint`); ``options`` go to the loader
    (``device`` for both)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"codec file {str(path)!r} does not exist")
    state = _load_state_file(path)
    if isinstance(state, dict) and state.get("codec") == MEL_CODEC_KIND:
        return MelCodec.from_state(state, repr(str(path)), **options)
    return CodecTokenizer.from_checkpoint(path, **options)


def codec_description(codec: Codec) -> str:
    """One line naming the codec and its weights (for logs and reports)."""
    if isinstance(codec, MelCodec):
        return codec.describe()
    return f"EnCodec 24 kHz, {BANDWIDTH:g} kbps, {codec.weights_source} weights"
