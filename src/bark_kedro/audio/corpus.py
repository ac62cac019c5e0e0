"""Choose where a corpus comes from: the project's own demo corpus or a recorded dataset."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from bark_kedro.audio.demo_corpus import DemoCorpusConfig, synthesize_demo_corpus
from bark_kedro.audio.sources import read_manifest, read_source

SourceKind = Literal["demo", "ljspeech", "libritts", "manifest"]


@dataclass(frozen=True)
class SourceConfig:
    """Where the recordings and transcripts are.

    ``kind="demo"`` synthesises the project's own corpus into ``path`` (once) and reads its
    manifest; the other kinds read an existing dataset at ``path`` (a folder, or a CSV/JSONL
    manifest file for ``manifest``).
    """

    kind: SourceKind = "demo"
    path: str = "data/01_raw/demo"


def load_corpus(
    source: SourceConfig, demo: DemoCorpusConfig | None = None, progress: bool = True
) -> pd.DataFrame:
    """List a corpus's utterances (id, speaker, text, source path), making the demo one if asked."""
    if source.kind == "demo":
        synthesize_demo_corpus(source.path, demo or DemoCorpusConfig(), progress=progress)
        return read_manifest(Path(source.path) / "manifest.csv")
    return read_source(source.kind, source.path)
