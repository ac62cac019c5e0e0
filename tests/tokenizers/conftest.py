import numpy as np
import pytest


def tone(seconds: float, sample_rate: int, seed: int = 0) -> np.ndarray:
    """A gliding tone with a little noise: speech-like enough to give varied frames."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    f0 = 150 + 120 * np.sin(2 * np.pi * (1.3 + seed) * t)
    wave = 0.3 * np.sin(2 * np.pi * np.cumsum(f0) / sample_rate) * (0.6 + 0.4 * np.sin(7 * t))
    return (wave + 0.02 * rng.normal(size=t.size)).astype(np.float32)


@pytest.fixture
def make_tone():
    return tone
