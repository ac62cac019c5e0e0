"""What the project's versioned local-file catalog entries share."""

from __future__ import annotations

from pathlib import Path

from kedro.io import AbstractVersionedDataset, DatasetError


def load_path_exists(dataset: AbstractVersionedDataset) -> bool:
    """Whether the version ``dataset`` would load (pinned or latest) is on the local disk."""
    try:
        path = dataset._get_load_path()
    except DatasetError:  # no version saved yet
        return False
    return Path(path.as_posix()).exists()
