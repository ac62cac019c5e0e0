"""Frame-count conventions shared by the semantic and codec tokenizers.

Both token streams use a hop of 320 samples: semantic features at 16 kHz (50 Hz, which Bark
rounds to 49.9 Hz) and EnCodec at 24 kHz (75 Hz). The two conventions below keep the streams
aligned with the audio's duration: for any clip up to 10 s, the semantic count is within one of
``duration * 49.9`` and the codec count within one of ``duration * 75``.
"""

from __future__ import annotations

import math

SEMANTIC_SAMPLE_RATE = 16_000
SEMANTIC_HOP = 320
SEMANTIC_RATE_HZ = 49.9  # Bark's nominal rate; the exact rate of a 320-hop stream is 50 Hz
CODEC_SAMPLE_RATE = 24_000
CODEC_HOP = 320
CODEC_RATE_HZ = 75.0


def frame_count(num_samples: int, hop: int, rounding: str = "ceil") -> int:
    """Number of frames of ``hop`` samples covering ``num_samples`` (never fewer than one).

    ``rounding="ceil"`` counts a trailing partial frame (EnCodec's convention); ``"floor"`` drops
    it (the convention of HuBERT-style conv stacks, see :func:`semantic_frame_count`).
    """
    if num_samples < 0:
        raise ValueError(f"num_samples must be >= 0, got {num_samples}")
    if hop <= 0:
        raise ValueError(f"hop must be > 0, got {hop}")
    if rounding == "ceil":
        frames = math.ceil(num_samples / hop)
    elif rounding == "floor":
        frames = num_samples // hop
    else:
        raise ValueError(f"rounding must be 'ceil' or 'floor', got {rounding!r}")
    return max(1, int(frames))


def semantic_frame_count(num_samples: int, hop: int = SEMANTIC_HOP) -> int:
    """Semantic frames for ``num_samples`` of 16 kHz audio: ``max(1, num_samples // hop)``."""
    return frame_count(num_samples, hop, rounding="floor")


def codec_frame_count(num_samples: int, hop: int = CODEC_HOP) -> int:
    """EnCodec frames for ``num_samples`` of 24 kHz audio: ``max(1, ceil(num_samples / hop))``."""
    return frame_count(num_samples, hop, rounding="ceil")
