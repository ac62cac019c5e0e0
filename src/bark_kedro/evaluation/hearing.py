"""Metrics that hear: intelligibility, speaker similarity and predicted MOS of held-out audio.

Every held-out utterance is heard three times: the ``synthesized`` audio, the recording's
codec ``round_trip`` (its codec tokens decoded: the best the models can reach through this
codec) and the ``original`` recording (the ceiling of the metric itself). Per-utterance metric
names are ``<role>/<metric>`` (``synthesized/cer``, ``round_trip/speaker_similarity``,
``original/dnsmos_ovrl``, ...), so their means keep one name in every run.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from bark_kedro.audio.io import load_audio
from bark_kedro.evaluation.intelligibility import (
    ASR_KINDS,
    Recognizer,
    build_recognizer,
    error_rates,
)
from bark_kedro.evaluation.quality import MOS_KINDS, DnsMos
from bark_kedro.evaluation.report import UtteranceEvaluation
from bark_kedro.evaluation.speaker import (
    SPEAKER_KINDS,
    SpeakerEncoder,
    build_speaker_encoder,
    cosine_similarity,
    mean_embedding,
)
from bark_kedro.tokenizers.frames import CODEC_SAMPLE_RATE

logger = logging.getLogger(__name__)

ROLES = ("synthesized", "round_trip", "original")
HEARD_METRICS = ("cer", "wer", "speaker_similarity", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")
# comparing codes only means something when the codec is a real one (not random EnCodec)
CODEC_DEPENDENT = ("mcd_db", "codec_token_accuracy")


@dataclass(frozen=True)
class HearingConfig:
    """Which models hear: ``asr`` (``pocketsphinx`` offline, ``whisper`` from ``asr_path``),
    ``speaker`` (``resemblyzer`` offline, ``wavlm`` from ``speaker_path``), ``mos``
    (``dnsmos`` or ``none``); the speaker reference is the mean embedding of up to
    ``speaker_references`` training recordings of the utterance's speaker. ``enabled: false``
    skips all of it."""

    enabled: bool = True
    asr: str = "pocketsphinx"
    asr_path: str | None = None
    speaker: str = "resemblyzer"
    speaker_path: str | None = None
    mos: str = "dnsmos"
    speaker_references: int = 3
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name, kinds in (("asr", ASR_KINDS), ("speaker", SPEAKER_KINDS), ("mos", MOS_KINDS)):
            if getattr(self, name) not in kinds:
                raise ValueError(f"HearingConfig.{name}={getattr(self, name)!r}: must be one of "
                                 f"{list(kinds)}")
        if self.asr == "whisper" and not self.asr_path:
            raise ValueError("HearingConfig.asr='whisper' needs asr_path (a local model folder)")
        if self.speaker == "wavlm" and not self.speaker_path:
            raise ValueError("HearingConfig.speaker='wavlm' needs speaker_path (a local folder)")
        if self.speaker_references < 1:
            raise ValueError(f"HearingConfig.speaker_references={self.speaker_references}: "
                             f"must be >= 1")


class Listener:
    """The three models of a :class:`HearingConfig`, loaded once."""

    def __init__(self, config: HearingConfig):
        self.config = config
        self.recognizer: Recognizer = build_recognizer(config.asr, config.asr_path, config.device)
        self.speaker: SpeakerEncoder = build_speaker_encoder(config.speaker, config.speaker_path,
                                                             config.device)
        self.mos = DnsMos() if config.mos == "dnsmos" else None

    def models(self) -> dict[str, str]:
        """What heard the audio, for the report and MLflow."""
        return {"asr": self.recognizer.name, "speaker": self.speaker.name,
                "mos": self.mos.name if self.mos else "none"}

    def hear(self, audio: np.ndarray, text: str, speaker_embedding: np.ndarray | None,
             sample_rate: int = CODEC_SAMPLE_RATE) -> tuple[dict[str, float], str]:
        """Metrics of one clip (``cer``, ``wer``, ``speaker_similarity``, ``dnsmos_*``) and its
        transcript."""
        transcript = self.recognizer.transcribe(audio, sample_rate)
        metrics = error_rates(text, transcript)
        if speaker_embedding is not None:
            metrics["speaker_similarity"] = cosine_similarity(
                self.speaker.embed(audio, sample_rate), speaker_embedding)
        if self.mos is not None and np.any(audio):
            metrics.update(self.mos.score(audio, sample_rate))
        return metrics, transcript


def speaker_reference_paths(utterances: pd.DataFrame, speaker: str, exclude: str,
                            count: int) -> list[str]:
    """24 kHz paths of up to ``count`` training recordings of ``speaker`` (by id), other than
    ``exclude``."""
    rows = utterances[(utterances["speaker"] == speaker) & (utterances["split"] == "train")
                      & (utterances["utterance_id"] != exclude)]
    return rows.sort_values("utterance_id")["audio_24k_path"].head(count).tolist()


def _read(path: str) -> np.ndarray:
    audio, rate = load_audio(path)
    if rate != CODEC_SAMPLE_RATE:
        raise ValueError(f"{path!r} is at {rate} Hz, expected {CODEC_SAMPLE_RATE} Hz")
    return audio.mean(axis=0) if audio.ndim == 2 else audio


def listen_to_heldout(evaluations: Sequence[UtteranceEvaluation], utterances: pd.DataFrame,
                      listener: Listener) -> list[UtteranceEvaluation]:
    """``evaluations`` (synthesized audio + codec round trip) with the original recordings
    added and every role heard: ``<role>/<metric>`` metrics and ``<role>`` transcripts."""
    table = utterances.set_index("utterance_id")
    embeddings: dict[str, np.ndarray | None] = {}
    out = []
    for evaluation in tqdm(evaluations, desc="hearing held-out audio", unit="utt"):
        row = table.loc[evaluation.utterance_id]
        speaker = str(row["speaker"])
        if speaker not in embeddings:
            paths = speaker_reference_paths(utterances, speaker, evaluation.utterance_id,
                                            listener.config.speaker_references)
            embeddings[speaker] = (mean_embedding(listener.speaker, [_read(p) for p in paths],
                                                  CODEC_SAMPLE_RATE) if paths else None)
            if not paths:
                logger.warning("speaker %s has no training recordings: no speaker similarity",
                               speaker)
        original = _read(row["audio_24k_path"])
        metrics, transcripts = dict(evaluation.metrics), {}
        for role, audio in (("synthesized", evaluation.synth_audio),
                            ("round_trip", evaluation.ref_audio), ("original", original)):
            if audio is None:
                continue
            heard, transcripts[role] = listener.hear(audio, evaluation.text, embeddings[speaker])
            metrics.update({f"{role}/{name}": value for name, value in heard.items()})
        out.append(dataclasses.replace(evaluation, original_audio=original, metrics=metrics,
                                       transcripts=transcripts))
    return out


def drop_codec_dependent(evaluations: Sequence[UtteranceEvaluation]
                         ) -> list[UtteranceEvaluation]:
    """``evaluations`` without MCD and codec-token accuracy: through a random-weight codec
    they measure nothing (every utterance decodes to the same stationary sound)."""
    def keep(name: str) -> bool:
        return not name.startswith(CODEC_DEPENDENT)

    return [dataclasses.replace(e, metrics={k: v for k, v in e.metrics.items() if keep(k)})
            for e in evaluations]


def role_table(summary: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """``{role: {metric: mean}}`` of a summary holding ``<role>/<metric>_mean`` entries."""
    table: dict[str, dict[str, float]] = {}
    for role in ROLES:
        for name in HEARD_METRICS:
            value = summary.get(f"{role}/{name}_mean")
            if value is not None:
                table.setdefault(role, {})[name] = float(value)
    return table
