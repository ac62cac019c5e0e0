"""Tokenize runs in a project copy and the tables they leave (shared by pipeline tests)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from tests.helpers.kedro_runs import FAST_TOKENIZE, nested

TABLES = ("text_tokens", "semantic_tokens", "codec_tokens", "rejected_tokenization")


def tokenize(project: Path, load_versions: dict[str, str] | None = None, **params) -> None:
    """One tokenize run in ``project`` with the fast test settings (``params`` on top)."""
    bootstrap_project(project)
    with KedroSession.create(project_path=project,
                             runtime_params=nested({**FAST_TOKENIZE, **params})) as session:
        session.run(pipeline_names=["tokenize"], load_versions=load_versions or {})


def versions(project: Path, name: str) -> list[Path]:
    """The version folders of the token dataset ``name``, oldest first."""
    return sorted((project / "data/05_model_input" / f"{name}.parquet").iterdir())


def table(project: Path, name: str, index: int = -1) -> pd.DataFrame:
    """The whole table of one version (a single file or a folder of shards)."""
    folder = versions(project, name)[index]
    return pd.read_parquet(folder / f"{name}.parquet")


def digest(folder: Path) -> str:
    """SHA-256 over every file under ``folder``, in path order."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()


def break_audio(project: Path, utterances: pd.DataFrame) -> dict[str, str]:
    """Make one 16 kHz file unreadable and one 24 kHz file 3x too long; the expected rejects."""
    bad_16k, long_24k = utterances.utterance_id.iloc[1], utterances.utterance_id.iloc[2]
    row = utterances.set_index("utterance_id")
    (project / row.loc[bad_16k, "audio_16k_path"]).write_bytes(b"RIFF not really a wav")
    path = project / row.loc[long_24k, "audio_24k_path"]
    audio, rate = sf.read(path, dtype="float32")
    sf.write(path, np.tile(audio, 3), rate, subtype="FLOAT")
    return {bad_16k: "semantic", long_24k: "codec"}
