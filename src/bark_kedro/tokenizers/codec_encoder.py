"""EnCodec encoding tuned for CPUs: clips in parallel threads, the LSTM batched.

Where the time goes on a CPU (1 thread, per second of 24 kHz audio): the SEANet convolutions
~60 ms, the 2-layer LSTM ~20 ms one clip at a time (a matrix-vector product per step that
reads its weights from memory 75 times a second) but ~8 ms for a batch, the quantizer ~5 ms.
The convolutions get *slower* per clip in a padded batch (activations of several clips
overflow the caches), and intra-op threads scale poorly on single clips. So here each worker
thread (torch intra-op threads set to 1 while it runs) takes a group of clips of similar
length, runs the convolutions clip by clip, then the LSTM, the last convolution and the
quantizer on the group as one zero-padded batch. EnCodec 24 kHz is causal, so right padding
leaves every clip's own frames unchanged (LSTM outputs past a clip's end are zeroed: a lone
short clip's reflect padding sees zeros there). Weight norm is folded into the weights once (a copy
of the encoder), instead of being recomputed at every call.
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

HOP = 320


@contextmanager
def intra_op_threads(n: int) -> Iterator[None]:
    """Set torch's intra-op thread count for the block (a process-wide setting), then restore."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


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
