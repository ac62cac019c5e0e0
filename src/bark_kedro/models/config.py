"""Model configs of the three Bark stages, with size presets.

Parameters are always float32; ``dtype`` is the compute dtype ("float32" or
"bfloat16"). Vocabulary sizes come from a :class:`~bark_kedro.models.tokens.BarkVocab`
that the config carries, so a checkpoint records the token layout it was trained with.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

from bark_kedro.models.tokens import BARK_VOCAB, BarkVocab

COMPUTE_DTYPES = ("float32", "bfloat16", "float16")
GPT_STAGES = ("semantic", "coarse")

PRESETS: dict[str, dict[str, int]] = {
    "bark": dict(n_layer=24, n_head=16, n_embd=1024, block_size=1024, merge_context_len=256),
    "bark_small": dict(n_layer=12, n_head=12, n_embd=768, block_size=1024, merge_context_len=256),
    "tiny": dict(n_layer=4, n_head=4, n_embd=128, block_size=256, merge_context_len=64),
    "test": dict(n_layer=2, n_head=2, n_embd=32, block_size=128, merge_context_len=32),
}


@dataclass(frozen=True)
class _BaseConfig:
    n_layer: int = 2
    n_head: int = 2
    n_embd: int = 32
    block_size: int = 128
    input_vocab_size: int = 0
    output_vocab_size: int = 0
    bias: bool = False
    dropout: float = 0.0
    dtype: str = "float32"
    vocab: BarkVocab = field(default=BARK_VOCAB)

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    def _validate_common(self) -> None:
        name = type(self).__name__
        for key in (
            "n_layer",
            "n_head",
            "n_embd",
            "block_size",
            "input_vocab_size",
            "output_vocab_size",
        ):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}.{key} must be a positive int, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(
                f"{name}.n_embd={self.n_embd} must be divisible by n_head={self.n_head}"
            )
        if not isinstance(self.bias, bool):
            raise ValueError(f"{name}.bias must be a bool, got {self.bias!r}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"{name}.dropout must be in [0, 1), got {self.dropout!r}")
        if self.dtype not in COMPUTE_DTYPES:
            raise ValueError(f"{name}.dtype must be one of {COMPUTE_DTYPES}, got {self.dtype!r}")
        if not isinstance(self.vocab, BarkVocab):
            raise ValueError(f"{name}.vocab must be a BarkVocab, got {type(self.vocab).__name__}")

    def _require(self, key: str, minimum: int, why: str) -> None:
        if getattr(self, key) < minimum:
            raise ValueError(
                f"{type(self).__name__}.{key}={getattr(self, key)} is too small: {why} "
                f"needs at least {minimum}"
            )

    def replace(self, **changes: Any):
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict, tagged with the model kind."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["vocab"] = self.vocab.to_dict()
        data["model"] = MODEL_KINDS_INV[type(self)]
        return data


@dataclass(frozen=True)
class GPTConfig(_BaseConfig):
    """Causal GPT of the semantic and coarse stages.

    ``merge_context_len``: with ``merge_context=True`` the first two blocks of that
    length (text, semantic history) are embedded and summed position by position.
    """

    stage: str = "semantic"
    merge_context_len: int = 256

    def __post_init__(self) -> None:
        self._validate_common()
        if self.stage not in GPT_STAGES:
            raise ValueError(f"GPTConfig.stage must be one of {GPT_STAGES}, got {self.stage!r}")
        if not isinstance(self.merge_context_len, int) or self.merge_context_len < 1:
            raise ValueError(
                f"GPTConfig.merge_context_len must be a positive int, got {self.merge_context_len!r}"
            )
        v = self.vocab
        if self.stage == "semantic":
            self._require(
                "input_vocab_size", v.semantic_infer_token + 1, "the semantic infer token"
            )
            self._require(
                "output_vocab_size", v.semantic_pad_token + 1, "the semantic pad/EOS token"
            )
        else:
            self._require("input_vocab_size", v.coarse_infer_token + 1, "the coarse infer token")
            self._require(
                "output_vocab_size",
                v.semantic_vocab_size + v.n_coarse_codebooks * v.codebook_size,
                "the coarse codebook tokens",
            )


@dataclass(frozen=True)
class FineGPTConfig(_BaseConfig):
    """Non-causal fine model: one input embedding per codebook, heads tied to embeddings."""

    n_codes_total: int = 8
    n_codes_given: int = 1

    def __post_init__(self) -> None:
        self._validate_common()
        if not 1 <= self.n_codes_given < self.n_codes_total:
            raise ValueError(
                f"FineGPTConfig needs 1 <= n_codes_given < n_codes_total, got "
                f"n_codes_given={self.n_codes_given}, n_codes_total={self.n_codes_total}"
            )
        if self.input_vocab_size != self.output_vocab_size:
            raise ValueError(
                "FineGPTConfig.input_vocab_size and output_vocab_size must be equal (heads are "
                f"tied to embeddings), got {self.input_vocab_size} and {self.output_vocab_size}"
            )
        self._require("input_vocab_size", self.vocab.fine_pad_code + 1, "the fine pad code")


ModelConfig = GPTConfig | FineGPTConfig
MODEL_KINDS: dict[str, type] = {"gpt": GPTConfig, "fine_gpt": FineGPTConfig}
MODEL_KINDS_INV: dict[type, str] = {v: k for k, v in MODEL_KINDS.items()}


def config_from_dict(data: dict[str, Any]) -> ModelConfig:
    """Rebuild a config written by ``to_dict``; unknown keys are an error naming them."""
    data = dict(data)
    kind = data.pop("model", None)
    if kind not in MODEL_KINDS:
        raise ValueError(f"config 'model' must be one of {sorted(MODEL_KINDS)}, got {kind!r}")
    cls = MODEL_KINDS[kind]
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown keys in {cls.__name__} config: {unknown}")
    if isinstance(data.get("vocab"), dict):
        data["vocab"] = BarkVocab.from_dict(data["vocab"])
    return cls(**data)


def _preset(name: str) -> dict[str, int]:
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}")
    return dict(PRESETS[name])


def semantic_config(
    preset: str = "bark", vocab: BarkVocab = BARK_VOCAB, **overrides: Any
) -> GPTConfig:
    """Config of the text -> semantic GPT for a size preset and a vocabulary."""
    args = _preset(preset) | dict(
        stage="semantic",
        input_vocab_size=vocab.semantic_input_vocab_size,
        output_vocab_size=vocab.semantic_output_vocab_size,
        vocab=vocab,
    )
    return GPTConfig(**(args | overrides))


def coarse_config(
    preset: str = "bark", vocab: BarkVocab = BARK_VOCAB, **overrides: Any
) -> GPTConfig:
    """Config of the semantic -> coarse GPT for a size preset and a vocabulary."""
    args = _preset(preset) | dict(
        stage="coarse",
        input_vocab_size=vocab.coarse_vocab_size,
        output_vocab_size=vocab.coarse_vocab_size,
        vocab=vocab,
    )
    return GPTConfig(**(args | overrides))


def fine_config(
    preset: str = "bark", vocab: BarkVocab = BARK_VOCAB, **overrides: Any
) -> FineGPTConfig:
    """Config of the coarse -> fine model for a size preset and a vocabulary."""
    args = _preset(preset)
    args.pop("merge_context_len")
    args |= dict(
        input_vocab_size=vocab.fine_vocab_size,
        output_vocab_size=vocab.fine_vocab_size,
        n_codes_total=vocab.n_fine_codebooks,
        n_codes_given=1,
        vocab=vocab,
    )
    return FineGPTConfig(**(args | overrides))
