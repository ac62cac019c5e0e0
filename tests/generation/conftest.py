"""Reference models shared by the generation tests (random weights, built once)."""

from __future__ import annotations

import pytest

from tests.generation.reference import save_and_load, suno_models


@pytest.fixture(scope="session")
def suno_and_ours(tmp_path_factory):
    """``(suno models {stage: (torch model, args)}, our models {stage: flax model})``."""
    suno = suno_models(seed=0, eos_boost=4.0)
    ours = save_and_load(suno, tmp_path_factory.mktemp("suno_checkpoints"))
    return suno, ours
