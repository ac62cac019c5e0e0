"""A small multi-speaker speech corpus synthesised offline with eSpeak NG.

Each speaker is an eSpeak voice variant with its own pitch and speaking rate; sentences
from ``demo_sentences.txt`` are dealt to speakers from a seeded numpy generator. The
corpus is written as ``wavs/<id>.wav`` (16-bit PCM at eSpeak's native rate) plus
``manifest.csv`` (``id,path,text,speaker``) and a ``corpus_stamp.json`` that lets a later
call with the same config skip the work. Output is byte-identical for the same config.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from tqdm.auto import tqdm

from bark_kedro.audio import espeak

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.csv"
STAMP_NAME = "corpus_stamp.json"
WAV_DIR = "wavs"
MANIFEST_COLUMNS = ["id", "path", "text", "speaker"]
_FORMAT_VERSION = 1


@dataclass(frozen=True)
class SpeakerStyle:
    """One synthetic speaker: an eSpeak voice (``lang+variant``), base pitch and rate."""

    voice: str
    pitch: int
    rate_wpm: int

    def __post_init__(self) -> None:
        if not isinstance(self.voice, str) or not self.voice.strip():
            raise ValueError(f"speaker voice must be a non-empty string, got {self.voice!r}")
        lo, hi = espeak.PITCH_RANGE
        if not lo <= self.pitch <= hi:
            raise ValueError(f"speaker {self.voice!r}: pitch {self.pitch} not in [{lo}, {hi}]")
        lo, hi = espeak.RATE_RANGE
        if not lo <= self.rate_wpm <= hi:
            raise ValueError(
                f"speaker {self.voice!r}: rate_wpm {self.rate_wpm} not in [{lo}, {hi}]"
            )


#: Distinct voices to draw speakers from, in order; the first ``num_speakers`` are used.
DEFAULT_SPEAKERS: tuple[SpeakerStyle, ...] = (
    SpeakerStyle("en-us+m3", 45, 170),
    SpeakerStyle("en-us+f2", 60, 180),
    SpeakerStyle("en+m1", 40, 160),
    SpeakerStyle("en+f1", 52, 165),
    SpeakerStyle("en-us+m7", 34, 185),
    SpeakerStyle("en-us+f5", 70, 155),
    SpeakerStyle("en+m2", 50, 175),
    SpeakerStyle("en-us+f3", 55, 170),
    SpeakerStyle("en-us+m4", 30, 165),
    SpeakerStyle("en+f4", 66, 190),
    SpeakerStyle("en-us+m5", 42, 150),
    SpeakerStyle("en+f3", 62, 180),
)


@dataclass(frozen=True)
class DemoCorpusConfig:
    """What to synthesise. ``sentences=None`` uses the bundled ``demo_sentences.txt``.

    Per utterance, pitch and rate are jittered uniformly by up to ``pitch_jitter`` and
    ``rate_jitter`` around the speaker's own values, so a speaker is not monotone.
    ``speakers`` may also be given as a list of dicts (as read from YAML).
    """

    num_speakers: int = 6
    utterances_per_speaker: int = 40
    seed: int = 0
    pitch_jitter: int = 4
    rate_jitter: int = 10
    speakers: tuple[SpeakerStyle, ...] = DEFAULT_SPEAKERS
    sentences: tuple[str, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        speakers = tuple(
            s if isinstance(s, SpeakerStyle) else SpeakerStyle(**s) for s in self.speakers
        )
        object.__setattr__(self, "speakers", speakers)
        if self.sentences is not None:
            object.__setattr__(self, "sentences", tuple(self.sentences))
            bad = [s for s in self.sentences if not isinstance(s, str) or not s.strip()]
            if not self.sentences or bad:
                raise ValueError(f"sentences must be non-empty strings; bad entries: {bad[:3]}")
        for name in ("num_speakers", "utterances_per_speaker"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.num_speakers > len(speakers):
            raise ValueError(
                f"num_speakers={self.num_speakers} but only {len(speakers)} speaker styles are "
                "defined; add entries to `speakers`"
            )
        for name in ("seed", "pitch_jitter", "rate_jitter"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(
                    f"{name} must be a non-negative integer, got {getattr(self, name)!r}"
                )


def load_demo_sentences() -> list[str]:
    """The bundled demo sentences (blank lines and ``#`` comments skipped)."""
    text = resources.files("bark_kedro.audio").joinpath("demo_sentences.txt").read_text("utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def plan_demo_corpus(config: DemoCorpusConfig) -> pd.DataFrame:
    """Decide every utterance (id, text, speaker, voice, pitch, rate) without synthesising.

    Each speaker reads ``utterances_per_speaker`` sentences in a seeded random order,
    reshuffling when the sentence list runs out; sentences recur across speakers.
    """
    sentences = list(config.sentences) if config.sentences is not None else load_demo_sentences()
    rng = np.random.default_rng(config.seed)
    rows = []
    for s, style in enumerate(config.speakers[: config.num_speakers]):
        n = config.utterances_per_speaker
        rounds = -(-n // len(sentences))  # ceil: reshuffle when the sentences run out
        order = np.concatenate([rng.permutation(len(sentences)) for _ in range(rounds)])[:n]
        pitch = style.pitch + rng.integers(-config.pitch_jitter, config.pitch_jitter + 1, n)
        rate = style.rate_wpm + rng.integers(-config.rate_jitter, config.rate_jitter + 1, n)
        speaker = f"spk{s:02d}"
        for u, k in enumerate(order):
            utt_id = f"{speaker}_{u:04d}"
            rows.append({
                "id": utt_id,
                "path": f"{WAV_DIR}/{utt_id}.wav",
                "text": sentences[k],
                "speaker": speaker,
                "voice": style.voice,
                "pitch": int(np.clip(pitch[u], *espeak.PITCH_RANGE)),
                "rate_wpm": int(np.clip(rate[u], *espeak.RATE_RANGE)),
            })  # fmt: skip
    return pd.DataFrame(rows)


def synthesize_demo_corpus(
    output_dir: str | Path, config: DemoCorpusConfig | None = None, progress: bool = True
) -> pd.DataFrame:
    """Write the demo corpus under ``output_dir`` and return its manifest.

    Files: ``wavs/<id>.wav`` (mono 16-bit PCM at eSpeak's 22050 Hz), ``manifest.csv``
    with columns ``id,path,text,speaker`` (paths relative to ``output_dir``) and a stamp.
    Every file is written atomically; if ``output_dir`` already holds a complete corpus
    for the same config and eSpeak version, nothing is synthesised again.
    """
    config = config or DemoCorpusConfig()
    root = Path(output_dir)
    plan = plan_demo_corpus(config)
    key = _corpus_key(config, plan)
    manifest = plan[MANIFEST_COLUMNS].reset_index(drop=True)
    if _is_complete(root, key, manifest):
        logger.info("Demo corpus in %s is complete for this config; not re-synthesising", root)
        return manifest

    (root / WAV_DIR).mkdir(parents=True, exist_ok=True)
    (root / STAMP_NAME).unlink(missing_ok=True)  # the corpus is incomplete until re-stamped
    rows = plan.itertuples(index=False)
    for row in tqdm(rows, total=len(plan), desc="demo corpus", disable=not progress):
        audio, rate = espeak.synthesize(row.text, row.voice, row.rate_wpm, row.pitch)
        pcm = np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)
        _atomic_write(root / row.path, lambda tmp, p=pcm, r=rate: _write_wav(tmp, p, r))
    _atomic_write(
        root / MANIFEST_NAME, lambda tmp: manifest.to_csv(tmp, index=False, lineterminator="\n")
    )
    stamp = {"key": key, "files_sha256": _files_digest(root, manifest)}
    _atomic_write(root / STAMP_NAME, lambda tmp: Path(tmp).write_text(json.dumps(stamp, indent=2)))
    return manifest


def read_manifest(output_dir: str | Path) -> pd.DataFrame:
    """Read ``manifest.csv`` back with every column as text (no NaN for words like "NA")."""
    return pd.read_csv(Path(output_dir) / MANIFEST_NAME, dtype=str, keep_default_na=False)


def _corpus_key(config: DemoCorpusConfig, plan: pd.DataFrame) -> dict:
    """What identifies a corpus: the full plan (texts, voices, pitches, rates) and eSpeak."""
    summary = asdict(config)
    summary["speakers"] = summary["speakers"][: config.num_speakers]
    summary.pop("sentences")  # covered by the plan digest
    return {
        "format_version": _FORMAT_VERSION,
        "config": json.loads(json.dumps(summary)),
        "plan_sha256": hashlib.sha256(plan.to_csv(index=False).encode()).hexdigest(),
        "espeak_version": espeak.version(),
        "sample_rate": espeak.sample_rate(),
    }


def _files_digest(root: Path, manifest: pd.DataFrame) -> str:
    digest = hashlib.sha256((root / MANIFEST_NAME).read_bytes())
    for rel in manifest["path"]:
        digest.update((root / rel).read_bytes())
    return digest.hexdigest()


def _is_complete(root: Path, key: dict, manifest: pd.DataFrame) -> bool:
    try:
        stamp = json.loads((root / STAMP_NAME).read_text())
        if stamp.get("key") != key or not read_manifest(root).equals(manifest):
            return False
        return stamp.get("files_sha256") == _files_digest(root, manifest)
    except (OSError, ValueError, pd.errors.ParserError):
        return False


def _write_wav(path: str, pcm: np.ndarray, rate: int) -> None:
    sf.write(path, pcm, rate, subtype="PCM_16", format="WAV")


def _atomic_write(target: Path, write) -> None:
    """Call ``write(tmp_path)`` then move the temp file over ``target`` in one step."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        write(str(tmp))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
