"""Spectrogram figures and their PNG files."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.image import imread
from PIL import Image

from bark_kedro.evaluation.plots import (
    PNG_COLOURS,
    PNG_DPI,
    log_mel_db,
    plot_spectrograms,
    spectrogram_figure,
)

SR = 24_000


def sweep(seconds, amplitude=0.3):
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * (200 + 300 * t) * t)).astype(np.float32)


def test_log_mel_db_is_in_decibels():
    loud = log_mel_db(sweep(0.5, 0.4))
    quiet = log_mel_db(sweep(0.5, 0.2))
    strong = loud > loud.max() - 30  # bins well above the floor
    np.testing.assert_allclose((loud - quiet)[strong], 20 * np.log10(2), atol=1e-3)


def test_both_panels_share_one_colour_scale():
    ref, synth = sweep(1.0, 0.05), sweep(0.6, 0.5)  # the synthesized one is 20 dB louder
    fig = spectrogram_figure(ref, synth, "utt-1", "a sweep")
    limits = [ax.images[0].get_clim() for ax in fig.axes if ax.images]
    assert len(limits) == 2 and limits[0] == limits[1]
    assert limits[0][1] == pytest.approx(max(log_mel_db(ref).max(), log_mel_db(synth).max()))
    assert "utt-1: a sweep" in fig.get_suptitle()


def test_plot_file_is_a_png_and_nothing_else_is_left(tmp_path):
    path = plot_spectrograms(tmp_path / "plots" / "utt.png", sweep(1.0), sweep(0.7), "utt",
                             "some text " * 30)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert imread(path).shape[:2] == (4 * PNG_DPI, 12 * PNG_DPI)
    with Image.open(path) as image:  # a palette image, small enough to embed in a page
        assert image.mode == "P" and len(image.getcolors()) <= PNG_COLOURS
    assert path.stat().st_size < 100_000
    assert [p.name for p in path.parent.iterdir()] == ["utt.png"]


def test_bad_audio_names_the_input_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="synth_audio is empty"):
        plot_spectrograms(tmp_path / "utt.png", sweep(1.0), np.zeros(0, np.float32), "utt", "")
    with pytest.raises(ValueError, match="ref_audio must be mono"):
        plot_spectrograms(tmp_path / "utt.png", np.zeros((2, SR), np.float32), sweep(1.0),
                          "utt", "")
    assert list(tmp_path.iterdir()) == []
