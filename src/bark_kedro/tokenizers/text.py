"""Text tokenizers: Bark's BERT vocabulary, or character / phoneme vocabularies built from data.

All tokenizers share a small interface: ``encode(text) -> list[int]``, ``decode(ids) -> str``,
``vocab_size``, ``pad_id``, ``to_dict()`` and ``from_dict()`` (a JSON-able artifact), plus the
raw id space the token tables store: ``encode_raw(text)`` gives ids in ``[0, text_vocab_size)``
(for ``bark``: BERT ids without Bark's text offset; for ``chars``/``phonemes``: ``encode``).
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

BARK_TOKENIZER_NAME = "bert-base-multilingual-cased"
TEXT_ENCODING_OFFSET = 10_048
TEXT_PAD_TOKEN = 129_595
_VOCAB_FILES = ("vocab.txt", "tokenizer.json")
PAD = "<pad>"
UNK = "<unk>"
FORMAT_VERSION = 1

Phonemizer = Callable[[str, str], str]


class TextTokenizer(Protocol):
    """What every text tokenizer offers."""

    kind: str

    @property
    def vocab_size(self) -> int: ...

    @property
    def pad_id(self) -> int: ...

    @property
    def text_vocab_size(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def encode_raw(self, text: str) -> list[int]: ...

    def decode(self, ids: Iterable[int]) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


def _default_phonemizer(text: str, voice: str) -> str:
    from bark_kedro.audio.espeak import phonemize

    return phonemize(text, voice)


@dataclass
class VocabTokenizer:
    """Character or phoneme tokenizer over a vocabulary built from training texts.

    Ids: ``0`` is the pad token, ``1`` the unknown token, symbols follow in sorted order.
    Text is NFC-normalised (and lower-cased if ``lowercase``); ``phonemes`` first turns it into
    eSpeak NG IPA with ``voice``. Symbols are Unicode code points, so decoding is lossless for
    every known symbol (it returns the phoneme string for ``phonemes``).
    """

    kind: str
    symbols: list[str]
    lowercase: bool = False
    voice: str | None = None
    phonemizer: Phonemizer | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in ("chars", "phonemes"):
            raise ValueError(f"kind must be 'chars' or 'phonemes', got {self.kind!r}")
        if self.kind == "phonemes" and not self.voice:
            raise ValueError("a 'phonemes' tokenizer needs an eSpeak NG voice, e.g. voice='en-us'")
        bad = [s for s in self.symbols if not isinstance(s, str) or len(s) != 1]
        if bad:
            raise ValueError(f"symbols must be single characters, got {bad[:5]}")
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError("symbols contain duplicates")
        self._ids = {s: i + 2 for i, s in enumerate(self.symbols)}

    @classmethod
    def build(
        cls,
        kind: str,
        texts: Iterable[str],
        *,
        min_count: int = 1,
        lowercase: bool = False,
        voice: str | None = "en-us",
        phonemizer: Phonemizer | None = None,
    ) -> VocabTokenizer:
        """Build the vocabulary from ``texts`` (the training split); rarer symbols become unk."""
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        if isinstance(texts, str):
            raise TypeError("texts must be a collection of strings, not a single string")
        tok = cls(kind, [], lowercase, voice if kind == "phonemes" else None, phonemizer)
        counts: Counter[str] = Counter()
        n_texts = 0
        for text in texts:
            counts.update(tok.units(text))
            n_texts += 1
        if n_texts == 0:
            raise ValueError(f"cannot build a {kind!r} vocabulary from no texts")
        symbols = sorted(s for s, c in counts.items() if c >= min_count)
        return cls(kind, symbols, lowercase, tok.voice, phonemizer)

    @property
    def vocab_size(self) -> int:
        return len(self.symbols) + 2

    @property
    def text_vocab_size(self) -> int:
        """Size of the raw id space of :meth:`encode_raw` (pad and unk included)."""
        return self.vocab_size

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def unk_id(self) -> int:
        return 1

    def units(self, text: str) -> list[str]:
        """The symbols ``text`` is made of, before the lookup (phonemised for ``phonemes``)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        text = unicodedata.normalize("NFC", text)
        if self.lowercase:
            text = text.lower()
        if self.kind == "phonemes":
            if not text.strip():
                return []
            phonemize = self.phonemizer or _default_phonemizer
            text = unicodedata.normalize("NFC", phonemize(text, self.voice))
        return list(text)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; unknown symbols map to :attr:`unk_id`."""
        return [self._ids.get(s, self.unk_id) for s in self.units(text)]

    def encode_raw(self, text: str) -> list[int]:
        """The token-table ids of ``text``: the same as :meth:`encode` for this tokenizer."""
        return self.encode(text)

    def decode(self, ids: Iterable[int]) -> str:
        """Join the symbols of ``ids``; pad is dropped, unknown ids read ``<unk>``."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.pad_id:
                continue
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"token id {i} is outside the vocabulary [0, {self.vocab_size})")
            out.append(UNK if i == self.unk_id else self.symbols[i - 2])
        return "".join(out)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "special": [PAD, UNK],
            "symbols": list(self.symbols),
            "lowercase": self.lowercase,
            "voice": self.voice,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], phonemizer: Phonemizer | None = None) -> VocabTokenizer:
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported tokenizer format_version {data.get('format_version')!r}")
        if data.get("special") != [PAD, UNK]:
            raise ValueError(f"unexpected special tokens {data.get('special')!r}")
        return cls(data["kind"], list(data["symbols"]), bool(data["lowercase"]), data["voice"],
                   phonemizer)


class BarkTextTokenizer:
    """The official models' tokenizer: ``bert-base-multilingual-cased`` without special tokens,
    ids shifted by :data:`TEXT_ENCODING_OFFSET` (so they can be fed to Bark's semantic model).

    Loads from ``path`` (a folder with ``vocab.txt`` or ``tokenizer.json``) or else from the
    Hugging Face cache (``cache_dir`` or the default ``$HF_HOME/hub``); never downloads.
    """

    kind = "bark"

    def __init__(self, path: str | Path | None = None, cache_dir: str | Path | None = None,
                 name: str = BARK_TOKENIZER_NAME):
        try:
            from transformers import BertTokenizerFast
        except ImportError as err:  # transformers is only needed for this tokenizer
            raise ImportError("the 'bark' text tokenizer needs the 'transformers' package") from err
        self.path = None if path is None else str(path)
        self.cache_dir = None if cache_dir is None else str(cache_dir)
        self.name = name
        folder = Path(self.path) if self.path is not None else self._cached_folder()
        if not any((folder / f).is_file() for f in _VOCAB_FILES):
            raise FileNotFoundError(
                f"no {' or '.join(_VOCAB_FILES)} in {str(folder)!r}: expected the files of the "
                f"{name!r} tokenizer there")
        self.tokenizer = BertTokenizerFast.from_pretrained(str(folder), local_files_only=True)
        if len(self.tokenizer) <= len(self.tokenizer.all_special_tokens):
            raise ValueError(f"the tokenizer loaded from {str(folder)!r} has no vocabulary")

    def _cached_folder(self) -> Path:
        from huggingface_hub import snapshot_download

        try:
            return Path(snapshot_download(self.name, cache_dir=self.cache_dir,
                                          local_files_only=True))
        except (OSError, ValueError) as err:  # LocalEntryNotFoundError is an OSError
            where = self.cache_dir or "the default Hugging Face cache ($HF_HOME/hub)"
            raise FileNotFoundError(
                f"the {self.name!r} tokenizer is not in {where} ({type(err).__name__}). Put its "
                f"files (vocab.txt, tokenizer_config.json) in a folder and pass it as `path`, or "
                f"run `hf download {self.name}` on a connected machine and copy the cache here."
            ) from err

    @property
    def vocab_size(self) -> int:
        """Ids ``encode`` can produce, pad included: offset + BERT vocab, at least pad + 1."""
        return max(TEXT_ENCODING_OFFSET + len(self.tokenizer), TEXT_PAD_TOKEN + 1)

    @property
    def pad_id(self) -> int:
        return TEXT_PAD_TOKEN

    @property
    def text_vocab_size(self) -> int:
        """Size of the BERT vocabulary: the raw id space of :meth:`encode_raw`."""
        return len(self.tokenizer)

    def encode_raw(self, text: str) -> list[int]:
        """BERT ids of ``text`` (no special tokens), without Bark's text offset."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def encode(self, text: str) -> list[int]:
        """Bark text ids: :meth:`encode_raw` shifted by :data:`TEXT_ENCODING_OFFSET`."""
        return [i + TEXT_ENCODING_OFFSET for i in self.encode_raw(text)]

    def decode(self, ids: Iterable[int]) -> str:
        raw = [int(i) - TEXT_ENCODING_OFFSET for i in ids if int(i) != TEXT_PAD_TOKEN]
        bad = [i + TEXT_ENCODING_OFFSET for i in raw if not 0 <= i < len(self.tokenizer)]
        if bad:
            raise ValueError(f"token ids {bad[:5]} are not Bark text ids")
        return self.tokenizer.decode(raw)

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, "kind": "bark", "path": self.path,
                "cache_dir": self.cache_dir, "name": self.name}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BarkTextTokenizer:
        return cls(path=data.get("path"), cache_dir=data.get("cache_dir"),
                   name=data.get("name", BARK_TOKENIZER_NAME))


TEXT_TOKENIZER_KINDS = ("bark", "chars", "phonemes")


def build_text_tokenizer(kind: str, texts: Sequence[str] | None = None,
                         **options: Any) -> TextTokenizer:
    """Make a text tokenizer of ``kind`` ('bark', 'chars' or 'phonemes').

    ``chars``/``phonemes`` build their vocabulary from ``texts`` (options: ``min_count``,
    ``lowercase``, ``voice``, ``phonemizer``); ``bark`` loads the BERT vocabulary (options:
    ``path``, ``cache_dir``) and ignores ``texts``.
    """
    if kind == "bark":
        return BarkTextTokenizer(**options)
    if kind in ("chars", "phonemes"):
        if texts is None:
            raise ValueError(f"a {kind!r} tokenizer needs the training texts to build its vocabulary")
        return VocabTokenizer.build(kind, texts, **options)
    raise ValueError(f"unknown text tokenizer kind {kind!r}; choose one of {TEXT_TOKENIZER_KINDS}")


def text_tokenizer_from_dict(data: dict[str, Any], **options: Any) -> TextTokenizer:
    """Rebuild a tokenizer saved with ``to_dict()`` (``options`` e.g. ``phonemizer``)."""
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind == "bark":
        return BarkTextTokenizer.from_dict(data)
    if kind in ("chars", "phonemes"):
        return VocabTokenizer.from_dict(data, **options)
    raise ValueError(f"not a saved text tokenizer (kind={kind!r}); expected one of "
                     f"{TEXT_TOKENIZER_KINDS}")
