import numpy as np
import pytest

from bark_kedro.tokenizers.frames import (
    CODEC_RATE_HZ,
    CODEC_SAMPLE_RATE,
    SEMANTIC_RATE_HZ,
    SEMANTIC_SAMPLE_RATE,
    codec_frame_count,
    frame_count,
    semantic_frame_count,
)


def test_frame_count_rounding():
    assert frame_count(640, 320) == 2
    assert frame_count(641, 320) == 3
    assert frame_count(641, 320, rounding="floor") == 2
    assert frame_count(0, 320) == frame_count(5, 320, rounding="floor") == 1


@pytest.mark.parametrize("bad", [dict(num_samples=-1, hop=320), dict(num_samples=10, hop=0),
                                 dict(num_samples=10, hop=3, rounding="round")])
def test_frame_count_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        frame_count(**bad)


def test_frame_counts_agree_with_duration():
    durations = np.concatenate([np.linspace(0.001, 10.0, 4001), [0.22498, 1.001, 9.999]])
    for d in durations:
        n16, n24 = int(round(d * SEMANTIC_SAMPLE_RATE)), int(round(d * CODEC_SAMPLE_RATE))
        sem, codec = semantic_frame_count(n16), codec_frame_count(n24)
        assert abs(sem - d * SEMANTIC_RATE_HZ) <= 1.0, d
        assert abs(codec - d * CODEC_RATE_HZ) <= 1.0, d
        # semantic frames never run past the audio (but there is at least one), codec frames
        # cover all of it: each stream is within one of its frames of the true duration
        d16, d24 = n16 / SEMANTIC_SAMPLE_RATE, n24 / CODEC_SAMPLE_RATE
        assert d16 - 1 / 50 < sem / 50 <= max(d16, 1 / 50), d
        assert d24 <= codec / CODEC_RATE_HZ < d24 + 1 / CODEC_RATE_HZ or n24 == 0, d
