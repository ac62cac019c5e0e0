"""Bark-compatible semantic ids: a learned quantizer over HuBERT Base layer-9 features.

The voice-cloning community's quantizers (``quantifier_hubert_base_ls960*.pth``) map each
50 Hz frame of 768-dim HuBERT features to one of Bark's 10 000 semantic ids. Two
architectures exist:

- version 0: a 2-layer LSTM (input -> hidden) and a linear layer (hidden -> output);
- version 1: the same LSTM, a linear layer (hidden -> 4096), then a linear layer (4096 -> output),
  with no activation in between.

A file is a zip written by ``torch.save(state_dict)`` (keys ``lstm.*``, ``intermediate.*`` for
version 1, ``fc.*``), optionally with a JSON entry ``<stem>/.info`` giving ``input_size``,
``hidden_size``, ``output_size`` and ``version``; files without it are version 0. The id of a
frame is the argmax of the logits (the published models end in a log-softmax, which keeps it).
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bark_kedro.atomic_files import file_digest

BARK_SEMANTIC_VOCAB = 10_000
INFO_ENTRY = ".info"
INTERMEDIATE_SIZE = 4096  # version 1's extra linear layer
QUANTIZER_VERSIONS = (0, 1)


class BarkQuantizerNet(torch.nn.Module):
    """The network of one quantizer version; ``forward`` gives logits (batch, frames, output)."""

    def __init__(self, input_size: int = 768, hidden_size: int = 1024,
                 output_size: int = BARK_SEMANTIC_VOCAB, version: int = 0):
        super().__init__()
        if version not in QUANTIZER_VERSIONS:
            raise ValueError(f"quantizer version must be one of {QUANTIZER_VERSIONS}, got {version}")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.output_size, self.version = output_size, version
        self.lstm = torch.nn.LSTM(input_size, hidden_size, num_layers=2, batch_first=True)
        if version == 1:
            self.intermediate = torch.nn.Linear(hidden_size, INTERMEDIATE_SIZE)
        self.fc = torch.nn.Linear(INTERMEDIATE_SIZE if version == 1 else hidden_size, output_size)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.lstm(features)
        if self.version == 1:
            hidden = self.intermediate(hidden)
        return self.fc(hidden)

    def info(self) -> dict[str, int]:
        return {"input_size": self.input_size, "hidden_size": self.hidden_size,
                "output_size": self.output_size, "version": self.version}


def _read_info(path: Path) -> dict[str, int] | None:
    """The JSON ``.info`` entry of the zip at ``path``, or None (a version-0 file)."""
    with zipfile.ZipFile(path) as archive:
        entries = [n for n in archive.namelist() if n == INFO_ENTRY or n.endswith("/" + INFO_ENTRY)]
        if not entries:
            return None
        try:
            info = json.loads(archive.read(entries[0]).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"quantizer {str(path)!r}: {entries[0]} is not JSON: {err}") from err
    keys = ("input_size", "hidden_size", "output_size", "version")
    if not isinstance(info, dict) or any(not isinstance(info.get(k), int) for k in keys):
        raise ValueError(f"quantizer {str(path)!r}: {entries[0]} must give integer {list(keys)}, "
                         f"got {info!r}")
    return {k: info[k] for k in keys}


def _shapes_info(state: dict[str, torch.Tensor], path: Path) -> dict[str, int]:
    """Sizes and version as the state dict's shapes give them."""
    needed = ("lstm.weight_ih_l0", "lstm.weight_hh_l0", "fc.weight")
    missing = [k for k in needed if k not in state]
    if missing:
        raise ValueError(f"{str(path)!r} is not a HuBERT semantic quantizer: no {missing} in its "
                         f"state dict (has {sorted(state)[:6]}...)")
    return {"input_size": int(state["lstm.weight_ih_l0"].shape[1]),
            "hidden_size": int(state["lstm.weight_hh_l0"].shape[1]),
            "output_size": int(state["fc.weight"].shape[0]),
            "version": 1 if "intermediate.weight" in state else 0}


def read_quantizer_file(path: str | Path) -> BarkQuantizerNet:
    """The network in a quantizer ``.pth`` file, loaded without unpickling code
    (``weights_only``); raises FileNotFoundError / ValueError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no HuBERT semantic quantizer at {str(path)!r}")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{str(path)!r} is not a quantizer file (a torch zip archive)")
    info = _read_info(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        raise ValueError(f"cannot read quantizer {str(path)!r}: {err}") from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{str(path)!r} does not hold a state dict of tensors")
    found = _shapes_info(state, path)
    if info is not None:
        wrong = {k: (info[k], found[k]) for k in found if info[k] != found[k]}
        if wrong:
            raise ValueError(f"quantizer {str(path)!r}: its .info disagrees with its weights "
                             f"(.info, weights): {wrong}")
    net = BarkQuantizerNet(**found)
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"quantizer {str(path)!r} does not fit a version-{found['version']} "
                         f"network: {err}") from err
    return net.eval()


def write_quantizer_file(path: str | Path, net: BarkQuantizerNet) -> Path:
    """Save ``net`` in the published layout (state dict zip + ``<stem>/.info``), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # torch names the archive's folder after the file: write under the final name, then move
    tmp_dir = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.stem}."))
    tmp = tmp_dir / path.name
    try:
        torch.save(net.state_dict(), tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(f"{path.stem}/{INFO_ENTRY}", json.dumps(net.info()))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        tmp_dir.rmdir()
    return path



@dataclass(eq=False)
class BarkHubertQuantizer:
    """Features (frames, input_size) -> Bark semantic ids, batched on ``device``.

    ``batch_frames`` bounds the padded frames of one batch (the logits of a batch take
    ``batch_frames * output_size`` floats).
    """

    path: str
    device: str = "cpu"
    batch_frames: int = 4096

    def __post_init__(self) -> None:
        if self.batch_frames <= 0:
            raise ValueError(f"batch_frames must be > 0, got {self.batch_frames}")
        self.path = str(self.path)
        self.net = read_quantizer_file(self.path).to(self.device)
        self.digest = file_digest(self.path)

    @property
    def dim(self) -> int:
        return self.net.input_size

    @property
    def n_clusters(self) -> int:
        return self.net.output_size

    @property
    def version(self) -> int:
        return self.net.version

    def config(self) -> dict[str, Any]:
        return {"kind": "bark_hubert", "path": str(Path(self.path).resolve()), "sha256": self.digest,
                **self.net.info()}

    def _check(self, features: np.ndarray) -> np.ndarray:
        x = np.asarray(features, np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"quantizer {self.path!r} takes (frames, {self.dim}) features, "
                             f"got shape {x.shape}")
        return x

    def predict(self, features: np.ndarray) -> np.ndarray:
        """int32 ids (frames,) of one clip's features."""
        return self.predict_batch([features])[0]

    def predict_batch(self, features: Sequence[np.ndarray]) -> list[np.ndarray]:
        """int32 ids of several clips: right-padded batches (the LSTM runs forward only, so
        padding after a clip never changes its ids), longest clips first."""
        clips = [self._check(f) for f in features]
        out: list[np.ndarray] = [np.zeros(0, np.int32)] * len(clips)
        order = sorted(range(len(clips)), key=lambda i: -len(clips[i]))
        start = 0
        while start < len(order):
            longest = max(len(clips[order[start]]), 1)
            stop = start + max(1, self.batch_frames // longest)
            batch = order[start:stop]
            padded = np.zeros((len(batch), longest, self.dim), np.float32)
            for row, i in enumerate(batch):
                padded[row, :len(clips[i])] = clips[i]
            with torch.inference_mode():
                logits = self.net(torch.from_numpy(padded).to(self.device))
                ids = logits.argmax(dim=-1).to(torch.int32).cpu().numpy()
            for row, i in enumerate(batch):
                out[i] = ids[row, :len(clips[i])].copy()
            start = stop
        return out
