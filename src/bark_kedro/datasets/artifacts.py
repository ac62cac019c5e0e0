"""Versioned catalog entries for the tokenizer artifacts, written atomically.

Each save goes to a hidden temporary name beside its target (in the version folder), then is
renamed into place, so a crash never leaves a half-written artifact under the real name (and a
later load never picks one up).
"""

from __future__ import annotations

import shutil
from abc import abstractmethod
from pathlib import Path, PurePosixPath
from typing import Any, Generic, TypeVar

from kedro.io import AbstractVersionedDataset, DatasetError, Version

from bark_kedro.atomic_files import (
    atomic_path,
    disk_full_error,
    store_by_digest,
    temporary_sibling,
)
from bark_kedro.datasets.local_versions import load_path_exists
from bark_kedro.tokenizers.codec import Codec, CodecTokenizer, load_codec_file
from bark_kedro.tokenizers.mel_codec import MelCodec
from bark_kedro.tokenizers.semantic import SemanticTokenizer

T = TypeVar("T")


class _LocalArtifactDataset(AbstractVersionedDataset[T, T], Generic[T]):
    """A local file or folder written by ``_write(data, path)`` and read by ``_read(path)``."""

    kind = "artifact"

    def __init__(self, filepath: str, version: Version | None = None,
                 load_args: dict[str, Any] | None = None,
                 metadata: dict[str, Any] | None = None) -> None:
        super().__init__(PurePosixPath(Path(filepath).as_posix()), version)
        self._load_args = dict(load_args or {})
        self.metadata = metadata

    @abstractmethod
    def _write(self, data: T, path: Path) -> None: ...

    @abstractmethod
    def _read(self, path: Path) -> T: ...

    def load(self) -> T:
        path = Path(self._get_load_path().as_posix())
        if not path.exists():
            raise DatasetError(f"no {self.kind} at {path}: run the pipeline that writes it")
        return self._read(path)

    def save(self, data: T) -> None:
        path = Path(self._get_save_path().as_posix())
        with atomic_path(path) as tmp:  # a folder is renamed whole too (path is new)
            self._write(data, tmp)

    def _exists(self) -> bool:
        return load_path_exists(self)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "version": self._version,
                "load_args": self._load_args}


class SemanticTokenizerDataset(_LocalArtifactDataset[SemanticTokenizer]):
    """A :class:`SemanticTokenizer` folder (feature config + k-means quantizer).

    ``load_args`` override the saved feature config (e.g. ``device``, ``checkpoint``)::

        semantic_tokenizer:
          type: bark_kedro.datasets.artifacts.SemanticTokenizerDataset
          filepath: data/06_models/semantic_tokenizer
          versioned: true
    """

    kind = "semantic tokenizer"

    def _write(self, data: SemanticTokenizer, path: Path) -> None:
        if not isinstance(data, SemanticTokenizer):
            raise DatasetError(f"expected a SemanticTokenizer, got {type(data).__name__}")
        data.save(path)

    def _read(self, path: Path) -> SemanticTokenizer:
        return SemanticTokenizer.load(path, **self._load_args)


class CodecModelDataset(_LocalArtifactDataset[Codec]):
    """A codec file: a :class:`CodecTokenizer` (``weights_source`` + EnCodec state dict) or the
    offline :class:`MelCodec`.

    Stored by content: the bytes go to ``<filepath>.blobs/sha256-<digest>.pt`` once and each
    version's file is a hard link to its blob, so a run that rebuilds the same codec adds a
    version but no second copy of the weights.

    ``load_args`` go to :func:`~bark_kedro.tokenizers.codec.load_codec_file` (e.g. ``device``)::

        codec_model:
          type: bark_kedro.datasets.artifacts.CodecModelDataset
          filepath: data/06_models/codec_model.pt
          versioned: true
    """

    kind = "codec model"

    def _write(self, data: Codec, path: Path) -> None:
        if not isinstance(data, CodecTokenizer | MelCodec):
            raise DatasetError(f"expected a CodecTokenizer or MelCodec, got {type(data).__name__}")
        data.save(path)

    def save(self, data: Codec) -> None:
        path = Path(self._get_save_path().as_posix())
        blob_dir = Path(f"{self._filepath.as_posix()}.blobs")
        blob_dir.mkdir(parents=True, exist_ok=True)
        # torch.save names its archive after the file: write under the final name, in a
        # temporary folder, so identical models give identical bytes.
        scratch = temporary_sibling(blob_dir / path.name)
        try:
            scratch.mkdir()
            self._write(data, scratch / path.name)
            store_by_digest(scratch / path.name, path, blob_dir)
        except Exception as err:
            full = disk_full_error(path, err)
            if full is not None:
                raise full from err
            raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _read(self, path: Path) -> Codec:
        return load_codec_file(path, **self._load_args)
