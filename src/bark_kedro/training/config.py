"""Typed, validated configs of a training run (frozen dataclasses, Kedro-agnostic).

Every ``__post_init__`` checks its fields and names the bad one, so a wrong parameter
fails when the run starts. The Kedro layer wraps these in pydantic models.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bark_kedro.models.layout import STAGES, scaled_windows
from bark_kedro.models.lora import LoRAConfig

INIT_SOURCES = ("scratch", "suno", "transformers", "orbax")
FINETUNE_MODES = ("full", "freeze", "lora")
FINE_CODEBOOK_CHOICES = ("all", "random")


def _fail(cls: object, name: str, rule: str, value: Any) -> None:
    raise ValueError(f"{type(cls).__name__}.{name} {rule}, got {value!r}")


def _int(obj: object, name: str, minimum: int, allow_none: bool = False) -> None:
    value = getattr(obj, name)
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        _fail(obj, name, f"must be an int >= {minimum}", value)


def _float(obj: object, name: str, low: float, high: float, low_open: bool = False) -> None:
    value = getattr(obj, name)
    if not isinstance(value, int | float) or isinstance(value, bool):
        _fail(obj, name, "must be a number", value)
    if value > high or value < low or (low_open and value == low):
        bracket = "(" if low_open else "["
        _fail(obj, name, f"must lie in {bracket}{low}, {high}]", value)


class _Replaceable:
    def replace(self, **changes: Any):
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly nested dict."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class OptimizerConfig(_Replaceable):
    """AdamW with linear warmup then cosine decay to ``min_learning_rate``.

    ``min_learning_rate`` defaults to ``min_learning_rate_ratio * learning_rate``. Weight
    decay applies to weight matrices and embeddings only (arrays of rank >= 2), never to
    LayerNorm scales or biases. ``grad_clip_norm`` 0 turns clipping off. One step applies
    one update from ``accumulation_steps`` batches (gradients summed over their tokens).
    """

    learning_rate: float = 3e-4
    min_learning_rate: float | None = None
    min_learning_rate_ratio: float = 0.1
    warmup_steps: int = 100
    weight_decay: float = 0.1
    b1: float = 0.9
    b2: float = 0.95
    eps: float = 1e-8
    grad_clip_norm: float = 1.0
    accumulation_steps: int = 1

    def __post_init__(self) -> None:
        _float(self, "learning_rate", 0.0, float("inf"), low_open=True)
        if self.min_learning_rate is not None:
            _float(self, "min_learning_rate", 0.0, self.learning_rate)
        _float(self, "min_learning_rate_ratio", 0.0, 1.0)
        _int(self, "warmup_steps", 0)
        _float(self, "weight_decay", 0.0, float("inf"))
        _float(self, "b1", 0.0, 1.0)
        _float(self, "b2", 0.0, 1.0)
        _float(self, "eps", 0.0, 1.0, low_open=True)
        _float(self, "grad_clip_norm", 0.0, float("inf"))
        _int(self, "accumulation_steps", 1)

    @property
    def end_learning_rate(self) -> float:
        """The learning rate the cosine decay ends at."""
        if self.min_learning_rate is not None:
            return float(self.min_learning_rate)
        return float(self.learning_rate * self.min_learning_rate_ratio)


@dataclass(frozen=True)
class MeshConfig(_Replaceable):
    """Device mesh ``(data, fsdp)``: ``data=-1`` uses every device not taken by ``fsdp``.

    Parameters and optimizer state are sharded along ``fsdp``; a batch is split over all
    ``data * fsdp`` devices (each device computes its own rows, FSDP style).
    """

    data: int = -1
    fsdp: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.data, int) or isinstance(self.data, bool) or (
            self.data < 1 and self.data != -1
        ):
            _fail(self, "data", "must be a positive int or -1 (all devices)", self.data)
        _int(self, "fsdp", 1)

    def shape(self, n_devices: int) -> tuple[int, int]:
        """``(data, fsdp)`` on ``n_devices`` devices; errors name the field that does not fit."""
        if n_devices % self.fsdp:
            raise ValueError(
                f"MeshConfig.fsdp={self.fsdp} does not divide the {n_devices} available devices"
            )
        data = n_devices // self.fsdp if self.data == -1 else self.data
        if data * self.fsdp > n_devices:
            raise ValueError(
                f"MeshConfig data={data} x fsdp={self.fsdp} needs {data * self.fsdp} devices, "
                f"only {n_devices} are available"
            )
        return data, self.fsdp


# StageDataConfig fields that only another stage's examples read (left out of a stage's records);
# the history settings also shape the coarse and fine voice prompts, so they stay everywhere.
DATA_FIELDS_OF_OTHER_STAGES = {
    "semantic": ("semantic_window", "max_coarse_history", "sliding_window_len",
                 "loss_on_history", "semantic_rate_hz", "coarse_rate_hz", "n_codes_given",
                 "window", "codebooks"),
    "coarse": ("truncate_text", "n_codes_given", "window", "codebooks"),
    "fine": ("truncate_text", "semantic_window", "max_coarse_history", "sliding_window_len",
             "loss_on_history", "semantic_rate_hz", "coarse_rate_hz"),
}


@dataclass(frozen=True)
class StageDataConfig(_Replaceable):
    """Layout options of the training examples of one stage.

    ``None`` sizes are derived from the model's ``block_size`` by :meth:`resolved`
    (Bark's values at block_size 1024, scaled down for smaller models).

    - semantic: ``history_drop_prob`` (the history block is the same speaker's preceding
      utterance, left empty with this probability; also used for the coarse and fine
      voice prompts), ``truncate_text`` (cut texts longer than the text block instead of
      leaving them out).
    - coarse: ``semantic_window``, ``max_coarse_history``, ``sliding_window_len``,
      ``loss_on_history``, ``semantic_rate_hz``/``coarse_rate_hz``.
    - fine: ``n_codes_given`` (codebooks given), ``window`` (frames), ``codebooks``
      ("all": one example per predicted codebook and window, "random": one drawn codebook).
    - batching: bucket lengths are multiples of ``bucket_multiple``; at most
      ``max_buckets`` of them (one compiled step each), placed to minimise padding.
    - streaming: ``chunk_records`` records are read and laid out at a time (a chunk and
      the next, built in the background, are held: memory grows with it; batches are
      planned within a chunk, so very small chunks pad and repeat more).
    """

    history_drop_prob: float = 0.5
    truncate_text: bool = False
    semantic_window: int | None = None
    max_coarse_history: int | None = None
    sliding_window_len: int | None = None
    loss_on_history: bool = True
    semantic_rate_hz: float = 49.9
    coarse_rate_hz: float = 75.0
    n_codes_given: int = 2
    window: int | None = None
    codebooks: str = "all"
    bucket_multiple: int = 8
    max_buckets: int = 8
    chunk_records: int = 1024

    def __post_init__(self) -> None:
        _float(self, "history_drop_prob", 0.0, 1.0)
        for name in ("truncate_text", "loss_on_history"):
            if not isinstance(getattr(self, name), bool):
                _fail(self, name, "must be a bool", getattr(self, name))
        _int(self, "semantic_window", 1, allow_none=True)
        _int(self, "max_coarse_history", 0, allow_none=True)
        _int(self, "sliding_window_len", 1, allow_none=True)
        _float(self, "semantic_rate_hz", 0.0, 1e6, low_open=True)
        _float(self, "coarse_rate_hz", 0.0, 1e6, low_open=True)
        _int(self, "n_codes_given", 1)
        _int(self, "window", 2, allow_none=True)
        if self.codebooks not in FINE_CODEBOOK_CHOICES:
            _fail(self, "codebooks", f"must be one of {FINE_CODEBOOK_CHOICES}", self.codebooks)
        _int(self, "bucket_multiple", 1)
        _int(self, "max_buckets", 1)
        _int(self, "chunk_records", 1)

    def resolved(self, block_size: int) -> StageDataConfig:
        """A copy with every ``None`` size filled in for a model of ``block_size``."""
        windows = scaled_windows(
            block_size, self.semantic_window, self.max_coarse_history,
            self.sliding_window_len, self.window,
        )
        sizes = dict(
            semantic_window=windows.semantic_window,
            max_coarse_history=windows.max_coarse_history,
            sliding_window_len=windows.sliding_window_len,
            window=windows.fine_window,
        )
        return self.replace(**sizes)


@dataclass(frozen=True)
class ModelInitConfig(_Replaceable):
    """Where a model's weights come from and which of them stay frozen.

    ``init_from``: "scratch" (``preset`` + ``overrides``), or an official checkpoint:
    "suno" (a ``.pt`` file), "transformers" (a ``save_pretrained`` directory of a Bark
    sub-model or a whole ``BarkModel``), "orbax" (a directory of ``models.save_model``).
    For a loaded model, ``overrides`` may only change ``dtype`` and ``dropout``.

    ``finetune`` says what trains: "full" every parameter; "freeze" all but the
    embeddings and the first ``freeze_layers`` blocks (0: the embeddings only); "lora"
    only low-rank adapters (``lora``: rank, alpha, dropout, target modules, and whether
    the LayerNorms / heads train too; its defaults when left out), the base weights frozen.
    ``freeze_layers`` is -1 unless ``finetune`` is "freeze".
    """

    preset: str = "tiny"
    overrides: dict[str, Any] = field(default_factory=dict)
    init_from: str = "scratch"
    checkpoint: str | None = None
    finetune: str = "full"
    freeze_layers: int = -1
    lora: LoRAConfig | None = None

    def __post_init__(self) -> None:
        from bark_kedro.models import PRESETS

        if self.preset not in PRESETS:
            _fail(self, "preset", f"must be one of {sorted(PRESETS)}", self.preset)
        if not isinstance(self.overrides, dict):
            _fail(self, "overrides", "must be a dict", self.overrides)
        if self.init_from not in INIT_SOURCES:
            _fail(self, "init_from", f"must be one of {INIT_SOURCES}", self.init_from)
        if self.init_from == "scratch" and self.checkpoint is not None:
            _fail(self, "checkpoint", "must be None when init_from is 'scratch'", self.checkpoint)
        if self.init_from != "scratch" and not self.checkpoint:
            _fail(self, "checkpoint", f"is required when init_from is {self.init_from!r}",
                  self.checkpoint)
        if self.init_from != "scratch" and not Path(self.checkpoint).exists():
            _fail(self, "checkpoint", f"names no file or folder (init_from {self.init_from!r}: "
                  "put the official checkpoint there or point checkpoint at it)",
                  self.checkpoint)
        if self.finetune not in FINETUNE_MODES:
            _fail(self, "finetune", f"must be one of {FINETUNE_MODES}", self.finetune)
        if not isinstance(self.freeze_layers, int) or self.freeze_layers < -1:
            _fail(self, "freeze_layers", "must be an int >= -1", self.freeze_layers)
        if self.finetune == "freeze" and self.freeze_layers < 0:
            _fail(self, "freeze_layers", "must be >= 0 when finetune is 'freeze'",
                  self.freeze_layers)
        if self.finetune != "freeze" and self.freeze_layers >= 0:
            _fail(self, "freeze_layers", f"needs finetune: freeze (finetune is "
                  f"{self.finetune!r}); set it to -1 or finetune to 'freeze'", self.freeze_layers)
        if isinstance(self.lora, dict):
            object.__setattr__(self, "lora", LoRAConfig.from_dict(self.lora))
        if self.lora is not None and not isinstance(self.lora, LoRAConfig):
            _fail(self, "lora", "must be a LoRAConfig or a dict of its fields", self.lora)
        if self.finetune == "lora" and self.lora is None:
            object.__setattr__(self, "lora", LoRAConfig())
        if self.finetune != "lora" and self.lora is not None:
            _fail(self, "lora", f"needs finetune: lora (finetune is {self.finetune!r})",
                  self.lora)


@dataclass(frozen=True)
class TrainConfig(_Replaceable):
    """One training run of one stage.

    ``steps`` optimizer updates of about ``tokens_per_batch`` positions per batch (times
    ``optimizer.accumulation_steps``); validation every ``eval_every`` steps on
    ``eval_batches`` batches (0: the whole validation set); an Orbax checkpoint every
    ``checkpoint_every`` steps and at the end, the last ``keep_checkpoints`` kept; metrics
    to the callback every ``log_every`` steps.
    """

    stage: str = "semantic"
    steps: int = 1000
    tokens_per_batch: int = 4096
    eval_every: int = 100
    eval_batches: int = 0
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 1
    seed: int = 0
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    mesh: MeshConfig = field(default_factory=MeshConfig)
    progress: bool = True

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            _fail(self, "stage", f"must be one of {STAGES}", self.stage)
        _int(self, "steps", 1)
        _int(self, "tokens_per_batch", 1)
        for name in ("eval_every", "checkpoint_every", "keep_checkpoints", "log_every"):
            _int(self, name, 1)
        _int(self, "eval_batches", 0)
        _int(self, "seed", 0)
        if not isinstance(self.optimizer, OptimizerConfig):
            _fail(self, "optimizer", "must be an OptimizerConfig", type(self.optimizer).__name__)
        if not isinstance(self.mesh, MeshConfig):
            _fail(self, "mesh", "must be a MeshConfig", type(self.mesh).__name__)
        if not isinstance(self.progress, bool):
            _fail(self, "progress", "must be a bool", self.progress)
