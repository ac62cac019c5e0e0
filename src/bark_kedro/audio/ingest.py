"""Turn a table of source utterances into validated, normalized 24 kHz and 16 kHz mono WAVs.

:func:`ingest_utterances` checks every row (see :mod:`bark_kedro.audio.validation` for the
reason codes), mixes to mono, resamples to the codec and semantic rates, normalizes each output
and writes them atomically. Every input row ends in exactly one of the two returned tables.
"""

from __future__ import annotations

import hashlib
import re
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from bark_kedro.audio.io import write_audio_atomic
from bark_kedro.audio.processing import (
    loudness_normalize,
    peak_normalize,
    resample,
    to_mono,
    trim_silence,
)
from bark_kedro.audio.sources import PROBLEM_COLUMN, SOURCE_COLUMNS
from bark_kedro.audio.validation import (
    BAD_MANIFEST_ROW,
    REASON_CODES,
    SILENT,
    RejectedInput,
    Rejection,
    check_samples,
    check_transcript,
    duplicate_rejections,
    load_valid_audio,
)

UTTERANCE_COLUMNS = [
    "utterance_id",
    "speaker",
    "text",
    "duration_s",
    "audio_24k_path",
    "audio_16k_path",
    "split",
    "source_path",
]
REJECTED_COLUMNS = ["utterance_id", "source_path", "reason"]
NORMALIZATIONS = ("peak", "loudness", "none")


@dataclass(frozen=True)
class IngestConfig:
    """Acceptance rules and output format; the defaults fit short TTS utterances.

    ``normalization`` is ``"peak"`` (max |sample| at ``peak_dbfs``), ``"loudness"`` (ITU-R
    BS.1770-4 integrated loudness at ``loudness_lufs`` via pyloudnorm, peaks capped at
    ``peak_dbfs``) or ``"none"``. ``trim_silence_db`` (``None``: off) cuts leading and
    trailing silence more than that many dB below the loudest 10 ms, keeping
    ``trim_margin_s`` of it (:func:`~bark_kedro.audio.processing.trim_silence`): a clip that ends
    in silence teaches a model, and primes a voice prompt, to go on in silence.

    ``validation_fraction`` of the utterances go to the validation split (by a hash of the
    id); a speaker with at least ``min_clips_for_validation`` clips gets at least one
    validation utterance even when the hash gave it none (small fine-tuning corpora; 0 turns
    this off).
    """

    min_duration_s: float = 0.3
    max_duration_s: float = 20.0
    silence_threshold_dbfs: float = -60.0
    normalization: str = "peak"
    peak_dbfs: float = -1.0
    loudness_lufs: float = -23.0
    codec_sample_rate: int = 24_000
    semantic_sample_rate: int = 16_000
    validation_fraction: float = 0.1
    min_clips_for_validation: int = 5
    trim_silence_db: float | None = None
    trim_margin_s: float = 0.05

    def __post_init__(self) -> None:
        def fail(field: str, problem: str) -> None:
            raise ValueError(f"IngestConfig.{field}={getattr(self, field)!r}: {problem}")

        if self.min_duration_s < 0:
            fail("min_duration_s", "must be >= 0")
        if self.max_duration_s <= self.min_duration_s:
            fail("max_duration_s", f"must be greater than min_duration_s={self.min_duration_s}")
        if self.normalization not in NORMALIZATIONS:
            fail("normalization", f"must be one of {list(NORMALIZATIONS)}")
        if self.peak_dbfs > 0:
            fail("peak_dbfs", "must be <= 0 dBFS")
        for name in ("codec_sample_rate", "semantic_sample_rate"):
            if int(getattr(self, name)) <= 0:
                fail(name, "must be a positive number of Hz")
        if not 0.0 <= self.validation_fraction <= 1.0:
            fail("validation_fraction", "must be between 0 and 1")
        threshold = self.min_clips_for_validation
        if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold == 1 or (
            threshold < 0
        ):
            fail("min_clips_for_validation", "must be 0 (off) or an int >= 2 (a speaker keeps "
                 "at least one training clip)")
        if self.trim_silence_db is not None and self.trim_silence_db <= 0:
            fail("trim_silence_db", "must be null (no trimming) or > 0 dB")
        if self.trim_margin_s < 0:
            fail("trim_margin_s", "must be >= 0 s")


# Terminal escape sequences, removed whole (dropping only ESC would leave "[31m" behind):
# CSI (ESC [ or the C1 byte U+009B, parameters, one final byte), OSC / DCS / APC / PM strings
# up to their terminator, and two-character ESC sequences.
_ESCAPE_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|(?:\x1b[\]P_^X]|[\x90\x9d\x9e\x9f\x98])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]"
)
# Bidirectional embeddings, overrides, isolates and marks: they reorder what a reader sees.
_BIDI_CONTROLS = dict.fromkeys(
    [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
)


def normalize_transcript(text: str) -> str:
    """NFKC-normalize, remove terminal escape sequences whole, bidi controls and other control
    characters, collapse whitespace and strip.

    Letters of every script, emoji and format characters (e.g. the zero-width joiner inside
    emoji sequences) are kept; line breaks and tabs become single spaces.
    """
    text = _ESCAPE_SEQUENCE.sub("", str(text))
    text = unicodedata.normalize("NFKC", text).translate(_BIDI_CONTROLS)
    text = _ESCAPE_SEQUENCE.sub("", text)  # NFKC can expose a sequence (full-width brackets)
    text = "".join(
        (" " if ch.isspace() else "") if unicodedata.category(ch) == "Cc" else ch for ch in text
    )
    return " ".join(text.split())


def _hash_position(utterance_id: str) -> float:
    digest = hashlib.sha256(str(utterance_id).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_split(utterance_id: str, validation_fraction: float) -> str:
    """``"validation"`` for a stable ``validation_fraction`` share of ids, else ``"train"``.

    Uses SHA-256 of the id, so the split is the same on every machine, run and Python process
    and an utterance never changes side when the corpus grows.
    """
    return "validation" if _hash_position(utterance_id) < validation_fraction else "train"


def assign_splits(
    utterance_ids: list[str], speakers: list[str], validation_fraction: float,
    min_clips_for_validation: int,
) -> list[str]:
    """:func:`assign_split` of each id, then, for each speaker with at least
    ``min_clips_for_validation`` clips (0: never) and no validation utterance, its clip of
    lowest hash position moves to validation.

    Deterministic (hashes of the ids only). The moved clip returns to train once the
    speaker's own hash share reaches validation, so only small speakers' splits can change
    as their clips grow in number.
    """
    splits = [assign_split(i, validation_fraction) for i in utterance_ids]
    if not min_clips_for_validation:
        return splits
    by_speaker: dict[str, list[int]] = {}
    for row, speaker in enumerate(speakers):
        by_speaker.setdefault(speaker, []).append(row)
    for rows in by_speaker.values():
        if len(rows) >= min_clips_for_validation and all(splits[r] == "train" for r in rows):
            chosen = min(rows, key=lambda r: (_hash_position(utterance_ids[r]), utterance_ids[r]))
            splits[chosen] = "validation"
    return splits


_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def safe_file_stem(utterance_id: str) -> str:
    """A file name stem for an id: the id itself if it is plain ASCII (letters, digits, ``._-``,
    at most 100 characters, not starting with a dot), otherwise a cleaned prefix plus a short
    hash of the id so distinct ids never share a file.
    """
    utterance_id = str(utterance_id)
    if _SAFE_ID.fullmatch(utterance_id):
        return utterance_id
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", utterance_id).lstrip("._")[:60]
    digest = hashlib.sha256(utterance_id.encode("utf-8")).hexdigest()[:12]
    return f"{cleaned}-{digest}" if cleaned else f"utt-{digest}"


def content_digest(audio: np.ndarray) -> str:
    """8 hex digits of the samples' hash: file names that change when the audio does, so a
    re-ingest with other settings never overwrites what an older ``utterances`` version names."""
    return hashlib.sha256(np.ascontiguousarray(audio, np.float32).tobytes()).hexdigest()[:8]


def _normalize(audio: np.ndarray, sample_rate: int, config: IngestConfig) -> np.ndarray:
    if config.normalization == "peak":
        return peak_normalize(audio, config.peak_dbfs)
    if config.normalization == "loudness":
        return loudness_normalize(audio, sample_rate, config.loudness_lufs, config.peak_dbfs)
    return audio


def _convert(
    audio: np.ndarray, sample_rate: int, rates: list[int], config: IngestConfig
) -> dict[int, np.ndarray]:
    """Mono, resampled and normalized copies per rate; raises RejectedInput if that fails."""
    mono = to_mono(audio)
    # Channels in opposite phase can cancel out: the mono mix must pass the silence check too.
    rejection = check_samples(mono, config.silence_threshold_dbfs)
    if rejection is not None:
        raise RejectedInput(Rejection(rejection.code, f"after mixing to mono, {rejection.detail}"))
    if config.trim_silence_db is not None:
        mono = trim_silence(mono, sample_rate, config.trim_silence_db, config.trim_margin_s)
    converted = {}
    for rate in rates:
        try:
            converted[rate] = _normalize(resample(mono, sample_rate, rate), rate, config)
        except ValueError as err:  # e.g. too quiet for the loudness meter's gate
            raise RejectedInput(
                Rejection(SILENT, f"{config.normalization} normalization: {err}")
            ) from err
    return converted


def _rate_folder(rate: int) -> str:
    return f"audio_{rate // 1000}k" if rate % 1000 == 0 else f"audio_{rate}"


def _early_rejections(sources: pd.DataFrame, texts: list[str],
                      problems: list[str]) -> list[Rejection | None]:
    """Table-level checks that need no audio: unreadable manifest rows, repeated ids / file
    names, empty transcripts."""
    ids = sources["utterance_id"].astype(str).tolist()
    keys = [safe_file_stem(i).casefold() for i in ids]  # case-insensitive file systems too
    duplicates = duplicate_rejections(keys, ids)
    return [
        Rejection(BAD_MANIFEST_ROW, problem) if problem else dup or check_transcript(text)
        for dup, text, problem in zip(duplicates, texts, problems, strict=True)
    ]


def ingest_utterances(
    sources: pd.DataFrame, output_dir: str | Path, config: IngestConfig, progress: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate, convert and write every utterance of ``sources`` (columns of the source readers).

    Writes ``<output_dir>/audio_24k/<id>.<digest>.wav`` and ``.../audio_16k/<id>.<digest>.wav`` (mono,
    float32, normalized per ``config``) and returns ``(utterances, rejected)``; rejected rows
    carry ``reason = "<code>: <detail>"``; a fault of one row (its file, its manifest line) is
    that row's rejection. Raises ValueError if the columns are missing or if no utterance is
    valid, with the reject counts per code; a full disk is an OSError naming file and device.
    """
    missing = [c for c in SOURCE_COLUMNS if c not in sources.columns]
    if missing:
        raise ValueError(f"sources table lacks column(s) {missing}; has {list(sources.columns)}")
    output_dir = Path(output_dir)
    rates = (config.codec_sample_rate, config.semantic_sample_rate)
    dirs = {rate: output_dir / _rate_folder(rate) for rate in rates}
    for folder in dirs.values():
        folder.mkdir(parents=True, exist_ok=True)

    problems = (sources[PROBLEM_COLUMN].fillna("").astype(str).tolist()
                if PROBLEM_COLUMN in sources.columns else [""] * len(sources))
    sources = sources[SOURCE_COLUMNS].fillna("").astype(str)  # a missing cell is empty, not "nan"
    texts = [normalize_transcript(t) for t in sources["text"]]
    early = _early_rejections(sources, texts, problems)
    kept: list[dict] = []
    rejected: list[dict] = []
    audio_seconds = 0.0
    started = time.perf_counter()
    rows = sources.itertuples(index=False)
    bar = tqdm(total=len(sources), desc="ingest", unit="utt", disable=not progress)
    for row, text, rejection in zip(rows, texts, early, strict=True):
        utt_id, speaker, _raw_text, source_path = row
        try:
            if rejection is not None:
                raise RejectedInput(rejection)
            audio, sample_rate = load_valid_audio(
                source_path,
                min_duration_s=config.min_duration_s,
                max_duration_s=config.max_duration_s,
                silence_threshold_dbfs=config.silence_threshold_dbfs,
            )
            converted = _convert(audio, sample_rate, list(dirs), config)
        except RejectedInput as rejected_input:
            rejected.append(
                {"utterance_id": utt_id, "source_path": source_path, "reason": str(rejected_input)}
            )
        else:
            stem = safe_file_stem(utt_id)
            paths = {
                rate: str(write_audio_atomic(
                    dirs[rate] / f"{stem}.{content_digest(wave)}.wav", wave, rate))
                for rate, wave in converted.items()
            }
            duration_s = (audio.shape[-1] / sample_rate if config.trim_silence_db is None else
                          converted[config.codec_sample_rate].shape[-1] / config.codec_sample_rate)
            kept.append(
                {
                    "utterance_id": utt_id,
                    "speaker": speaker,
                    "text": text,
                    "duration_s": duration_s,
                    "audio_24k_path": paths[config.codec_sample_rate],
                    "audio_16k_path": paths[config.semantic_sample_rate],
                    "split": "train",  # assigned below, per speaker
                    "source_path": source_path,
                }
            )
            audio_seconds += duration_s
        bar.update(1)
        elapsed = max(time.perf_counter() - started, 1e-9)
        bar.set_postfix(
            utt_per_s=f"{bar.n / elapsed:.1f}",
            audio_s_per_s=f"{audio_seconds / elapsed:.1f}",
            rejected=len(rejected),
            refresh=False,
        )
    bar.close()

    utterances = pd.DataFrame(kept, columns=UTTERANCE_COLUMNS)
    utterances["split"] = assign_splits(
        utterances["utterance_id"].tolist(), utterances["speaker"].tolist(),
        config.validation_fraction, config.min_clips_for_validation,
    )
    utterances["duration_s"] = utterances["duration_s"].astype(float)
    rejected_table = pd.DataFrame(rejected, columns=REJECTED_COLUMNS)
    if utterances.empty:
        counts = reject_counts(rejected_table)
        summary = ", ".join(f"{code}={n}" for code, n in counts.items() if n) or "no input rows"
        raise ValueError(
            f"no valid utterances left after ingestion of {len(sources)} row(s): {summary}"
        )
    return utterances, rejected_table


def reject_counts(rejected: pd.DataFrame) -> dict[str, int]:
    """Number of rejected rows per reason code (every known code, zeros included)."""
    found = Counter(str(reason).split(":", 1)[0] for reason in rejected["reason"])
    counts = {code: found.pop(code, 0) for code in REASON_CODES}
    counts.update(found)  # codes from elsewhere, if any, are still counted
    return counts


def summarize(utterances: pd.DataFrame, rejected: pd.DataFrame) -> dict[str, float]:
    """Flat metrics for MLflow: counts, hours per split, speakers, ``rejected.<code>`` counts,
    and each speaker's validation utterances (``validation_utterances.<speaker>``)."""
    hours = utterances["duration_s"].astype(float) / 3600.0
    split = utterances["split"]
    summary = {
        "n_utterances": float(len(utterances)),
        "n_rejected": float(len(rejected)),
        "hours_total": float(hours.sum()),
        "hours_train": float(hours[split == "train"].sum()),
        "hours_validation": float(hours[split == "validation"].sum()),
        "n_speakers": float(utterances["speaker"].nunique()),
    }
    per_speaker = (split == "validation").groupby(utterances["speaker"].astype(str)).sum()
    summary["speakers_without_validation"] = float((per_speaker == 0).sum())
    summary.update({f"validation_utterances.{speaker}": float(n)
                    for speaker, n in per_speaker.items()})
    summary.update({f"rejected.{code}": float(n) for code, n in reject_counts(rejected).items()})
    return summary
