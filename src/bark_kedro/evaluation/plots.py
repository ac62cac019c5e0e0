"""Side-by-side log-mel spectrograms of an utterance: original recording, codec round trip
(the reference) and synthesized audio."""

from __future__ import annotations

import io
import math
import os
import tempfile
import textwrap
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from bark_kedro.evaluation.audio_metrics import (
    DEFAULT_MEL_CEPSTRUM,
    MelCepstrumConfig,
    log_mel_amplitude,
)
from bark_kedro.tokenizers.frames import CODEC_SAMPLE_RATE

DYNAMIC_RANGE_DB = 80.0  # the colour scale spans this far below the louder spectrogram's peak
PNG_DPI = 72  # 864 x 288 pixels: sharp on a laptop screen, a few tens of kB
PNG_COLOURS = 128  # palette PNG (Pillow's quantizer): a quarter of the RGBA file's size
_DB_PER_LOG_AMPLITUDE = 20.0 / math.log(10.0)


def log_mel_db(audio: np.ndarray, sample_rate: int = CODEC_SAMPLE_RATE,
               config: MelCepstrumConfig = DEFAULT_MEL_CEPSTRUM, name: str = "audio") -> np.ndarray:
    """``(frames, n_mels)`` mel spectrogram in dB (the analysis of the MCD metric)."""
    return _DB_PER_LOG_AMPLITUDE * log_mel_amplitude(audio, sample_rate, config, name)


def spectrogram_figure(ref_audio: np.ndarray, synth_audio: np.ndarray | None, utterance_id: str,
                       text: str, sample_rate: int = CODEC_SAMPLE_RATE,
                       config: MelCepstrumConfig = DEFAULT_MEL_CEPSTRUM,
                       original_audio: np.ndarray | None = None) -> Figure:
    """Log-mel spectrograms side by side as an Agg figure: the ``original_audio`` recording
    (if given), the reference (its codec round trip) and the synthesized audio (if any).

    All panels share one colour scale, from the loudest peak down ``DYNAMIC_RANGE_DB`` (or to
    the quietest value if that is higher), and the title names the utterance and its text.
    """
    if int(sample_rate) <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    spectra = {}
    if original_audio is not None:
        spectra["original"] = log_mel_db(original_audio, sample_rate, config, "original_audio")
    spectra["codec round trip" if original_audio is not None else "reference"] = log_mel_db(
        ref_audio, sample_rate, config, "ref_audio")
    if synth_audio is not None:
        spectra["synthesized"] = log_mel_db(synth_audio, sample_rate, config, "synth_audio")
    vmax = max(float(s.max()) for s in spectra.values())
    vmin = max(vmax - DYNAMIC_RANGE_DB, min(float(s.min()) for s in spectra.values()))
    longest = max(len(s) for s in spectra.values()) * config.hop_length / sample_rate

    fig = Figure(figsize=(12, 4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(1, len(spectra), sharey=True))
    for ax, (label, spectrum) in zip(axes, spectra.items(), strict=True):
        seconds = len(spectrum) * config.hop_length / sample_rate
        image = ax.imshow(spectrum.T, origin="lower", aspect="auto", cmap="magma", vmin=vmin,
                          vmax=vmax, extent=(0.0, seconds, 0, config.n_mels),
                          interpolation="nearest")
        ax.set_xlim(0.0, longest)
        ax.set_title(f"{label} ({seconds:.2f} s)")
        ax.set_xlabel("time (s)")
    axes[0].set_ylabel("mel bin")
    fig.colorbar(image, ax=axes, label="dB")
    title = textwrap.shorten(f"{utterance_id}: {text}", width=160, placeholder=" ...")
    fig.suptitle("\n".join(textwrap.wrap(title, width=100)))
    return fig


def plot_spectrograms(path: str | Path, ref_audio: np.ndarray, synth_audio: np.ndarray | None,
                      utterance_id: str, text: str, sample_rate: int = CODEC_SAMPLE_RATE,
                      config: MelCepstrumConfig = DEFAULT_MEL_CEPSTRUM,
                      original_audio: np.ndarray | None = None) -> Path:
    """Write :func:`spectrogram_figure` as a palette PNG (``PNG_COLOURS`` colours at
    ``PNG_DPI``, small enough to embed in a page) at ``path`` and return ``path``.

    The file is written under a temporary name and renamed, so ``path`` is never half-written.
    """
    path = Path(path)
    fig = spectrogram_figure(ref_audio, synth_audio, utterance_id, text, sample_rate, config,
                             original_audio)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=PNG_DPI)
        with Image.open(buffer) as image:
            image.convert("RGB").quantize(PNG_COLOURS).save(tmp_name, format="PNG",
                                                            optimize=True)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path
