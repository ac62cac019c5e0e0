"""EnCodec encoding of clip pieces: padded batches through the whole model (GPUs), or, tuned
for CPUs, clips in parallel threads with the LSTM batched.

Where the time goes on a CPU (1 thread, per second of 24 kHz audio): the SEANet convolutions
~60 ms, the 2-layer LSTM ~20 ms one clip at a time (a matrix-vector product per step that
reads its weights from memory 75 times a second) but ~8 ms for a batch, the quantizer ~5 ms.
The convolutions get *slower* per clip in a padded batch (activations of several clips
overflow the caches), and intra-op threads scale poorly on single clips. So here each worker
thread (torch intra-op threads set to 1 while it runs) takes a group of clips of similar
length, runs the convolutions clip by clip, then the LSTM, the last convolution and the
quantizer on the group as one zero-padded batch. EnCodec 24 kHz is causal, so right padding
leaves every clip's own frames unchanged (LSTM outputs past a clip's end are zeroed: a lone
short clip's reflect padding sees zeros there). Weight norm is folded into the weights once
(a copy of the encoder), instead of being recomputed at every call.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import torch
from encodec import EncodecModel
from encodec.modules.conv import SConv1d
from encodec.modules.lstm import SLSTM

from bark_kedro.progress import progress_bar
from bark_kedro.tokenizers._checks import mono_float32
from bark_kedro.tokenizers.frames import CODEC_HOP, CODEC_SAMPLE_RATE, codec_frame_count

HOP = CODEC_HOP


@contextmanager
def intra_op_threads(n: int) -> Iterator[None]:
    """Set torch's intra-op thread count for the block (a process-wide setting), then restore."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


Piece = tuple[int, int, np.ndarray]


def pieces_of(audios: Sequence[np.ndarray], chunk_samples: int) -> list[Piece]:
    """(clip index, chunk index, samples zero-padded to whole frames) for every chunk."""
    if isinstance(audios, np.ndarray) and audios.ndim == 1:
        raise TypeError("audios must be a sequence of clips, not a single 1-D array")
    pieces = []
    for i, audio in enumerate(audios):
        x = mono_float32(audio, f"audio[{i}]")
        for j, start in enumerate(range(0, len(x), chunk_samples)):
            part = x[start:start + chunk_samples]
            padded = codec_frame_count(len(part)) * CODEC_HOP
            pieces.append((i, j, np.pad(part, (0, padded - len(part)))))
    return pieces


def _batches(pieces: list[Piece], batch_size: int, max_batch_samples: int):
    """Indices of pieces, longest first, grouped under both batch limits."""
    order = sorted(range(len(pieces)), key=lambda k: -len(pieces[k][2]))
    batch: list[int] = []
    for k in order:
        longest = len(pieces[batch[0]][2]) if batch else 0
        if batch and (len(batch) >= batch_size or longest * (len(batch) + 1) > max_batch_samples):
            yield batch
            batch = []
        batch.append(k)
    if batch:
        yield batch


def worker_groups(lengths: Sequence[int], batch_size: int, workers: int) -> list[list[int]]:
    """Indices of pieces in groups of similar length for ``workers`` threads, longest first:
    at most ``batch_size`` per group and at least two groups per worker (when there are
    enough pieces), so that every worker has work and they finish close together."""
    order = sorted(range(len(lengths)), key=lambda k: -lengths[k])
    if not order:
        return []
    n_groups = max(-(-len(order) // batch_size), min(len(order), 2 * workers))
    size = -(-len(order) // n_groups)
    return [order[i:i + size] for i in range(0, len(order), size)]


def run_padded(pieces: list[Piece], step, device: str, batch_size: int, max_batch_samples: int,
               progress: bool = False) -> dict[int, torch.Tensor]:
    """``step`` (batch, 1, samples) -> (batch, ..., frames) on padded batches; results trimmed
    to each piece's frames, keyed by piece index."""
    out = {}
    total = sum(len(p[2]) for p in pieces) / CODEC_SAMPLE_RATE
    with progress_bar(total=total, unit="audio-s", disable=not progress, nested=True,
              desc="EnCodec") as bar, torch.inference_mode():
        for batch in _batches(pieces, batch_size, max_batch_samples):
            x = np.zeros((len(batch), 1, len(pieces[batch[0]][2])), np.float32)
            for row, k in enumerate(batch):
                x[row, 0, : len(pieces[k][2])] = pieces[k][2]
            result = step(torch.from_numpy(x).to(device))
            for row, k in enumerate(batch):
                out[k] = result[row, ..., : len(pieces[k][2]) // CODEC_HOP].cpu()
            bar.update(round(sum(len(pieces[k][2]) for k in batch) / CODEC_SAMPLE_RATE, 2))
    return out



class PointwiseConv(torch.nn.Module):
    """A kernel-1 ``SConv1d`` as one matrix product (no padding call, no im2col copy: with one
    intra-op thread torch runs 1x1 convolutions through its slow im2col path)."""

    def __init__(self, conv: torch.nn.Conv1d):
        super().__init__()
        self.weight = torch.nn.Parameter(conv.weight.detach()[:, :, 0].clone(), requires_grad=False)
        bias = conv.bias.detach().clone() if conv.bias is not None else torch.zeros(len(self.weight))
        self.bias = torch.nn.Parameter(bias[:, None], requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(self.weight, x) + self.bias


def _is_pointwise(module: torch.nn.Module) -> bool:
    if not isinstance(module, SConv1d):
        return False
    conv = module.conv.conv
    return conv.kernel_size == (1,) and conv.stride == (1,) and conv.groups == 1


def inference_copy(module: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``module`` with weight norm folded into the weights (same values) and
    kernel-1 convolutions as :class:`PointwiseConv`."""
    for layer in module.modules():  # weight norm's computed weight may be a non-leaf tensor,
        if hasattr(layer, "weight_g"):  # which deepcopy refuses (recomputed at every call)
            layer.weight = layer.weight.detach()
    folded = copy.deepcopy(module)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        for layer in folded.modules():
            if hasattr(layer, "weight_g") and hasattr(layer, "weight_v"):
                torch.nn.utils.remove_weight_norm(layer)
    for parent in list(folded.modules()):
        for name, child in list(parent.named_children()):
            if _is_pointwise(child):
                setattr(parent, name, PointwiseConv(child.conv.conv))
    return folded


class ParallelEncoder:
    """Codes (or encoder outputs) of zero-padded pieces (lengths multiples of 320) on CPU."""

    def __init__(self, model: EncodecModel, n_codebooks: int):
        layers = list(inference_copy(model.encoder).model)
        split = next(i for i, layer in enumerate(layers) if isinstance(layer, SLSTM))
        self.convolutions = torch.nn.Sequential(*layers[:split]).eval()
        self.lstm = layers[split].eval()
        self.tail = torch.nn.Sequential(*layers[split + 1:]).eval()  # ELU, last conv
        self.quantizer = model.quantizer
        self.frame_rate = model.frame_rate
        self.bandwidth = model.bandwidth
        self.n_codebooks = n_codebooks

    def _embed(self, pieces: Sequence[np.ndarray]) -> tuple[torch.Tensor, list[int]]:
        """Encoder outputs (group, dim, longest frames) and each piece's frame count."""
        hidden = [self.convolutions(torch.from_numpy(p)[None, None])[0] for p in pieces]
        frames = [len(p) // HOP for p in pieces]
        batch = torch.zeros(len(pieces), hidden[0].shape[0], max(frames))
        for row, h in enumerate(hidden):
            batch[row, :, : h.shape[1]] = h
        hidden = self.lstm(batch)
        for row, n in enumerate(frames):  # as a lone clip sees it: the last convolution's
            hidden[row, :, n:] = 0.0  # reflect padding of a short clip reflects zeros
        return self.tail(hidden), frames

    def embed_group(self, pieces: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """Encoder outputs (dim, len // 320) of every piece of one group."""
        with torch.inference_mode():
            emb, frames = self._embed(pieces)
            return [emb[row, :, :n].clone() for row, n in enumerate(frames)]

    def encode_group(self, pieces: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """int64 codes (n_codebooks, len // 320) of every piece of one group."""
        with torch.inference_mode():
            emb, frames = self._embed(pieces)
            codes = self.quantizer.encode(emb, self.frame_rate, self.bandwidth)
            codes = codes.transpose(0, 1)  # (group, n_q, frames)
            return [codes[row, :, :n].clone() for row, n in enumerate(frames)]

    def map(self, step: Callable[[Sequence[np.ndarray]], list[torch.Tensor]],
            groups: Sequence[Sequence[np.ndarray]], workers: int) -> Iterator[list[torch.Tensor]]:
        """``step`` (:meth:`encode_group` or :meth:`embed_group`) of every group, ``workers``
        groups at a time, in order; with several workers each runs on one intra-op thread."""
        if workers <= 1:  # one worker keeps torch's own thread count
            yield from map(step, groups)
            return
        with intra_op_threads(1), ThreadPoolExecutor(workers) as pool:
            yield from pool.map(step, groups)
