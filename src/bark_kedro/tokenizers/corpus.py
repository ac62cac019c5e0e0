"""Tokenize a table of utterances (the ingest output) into the three token tables.

Tokenizers are fitted on the train split only (text vocabulary, k-means quantizer, random
codec codebooks); every utterance of both splits is then tokenized. An utterance that fails
(unreadable audio, no ids, a frame count that disagrees with its duration, a tokenizer error)
becomes a row of the rejects table with ``reason = "<code>: <detail>"`` and the rest goes on.
Each ``tokenize_*`` function returns ``(table, rejects, stats)``; ``stats`` holds throughput
figures (``audio_s_per_s`` is audio seconds per wall second). The same functions tokenize one
batch of utterances for the Ray engine (``require_some=False``: a batch may be all rejects).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from typing import Any

import numpy as np
import pandas as pd

from bark_kedro.audio.io import load_audio
from bark_kedro.progress import progress_bar
from bark_kedro.tokenizers.codec import Codec, CodecTokenizer, codec_description
from bark_kedro.tokenizers.codec_encoder import intra_op_threads
from bark_kedro.tokenizers.config import CodecConfig, SemanticConfig, TextConfig
from bark_kedro.tokenizers.frames import (
    CODEC_HOP,
    CODEC_SAMPLE_RATE,
    SEMANTIC_HOP,
    SEMANTIC_SAMPLE_RATE,
)
from bark_kedro.tokenizers.semantic import SemanticTokenizer, fit_semantic_quantizer
from bark_kedro.tokenizers.tables import (
    check_utterances,
    codec_tokens_table,
    rejected_table,
    semantic_tokens_table,
    text_tokens_table,
)
from bark_kedro.tokenizers.text import TextTokenizer

logger = logging.getLogger(__name__)

UNREADABLE_AUDIO = "unreadable_audio"
BAD_AUDIO = "bad_audio"
EMPTY_IDS = "empty_ids"
FRAME_MISMATCH = "frame_mismatch"
TOKENIZER_ERROR = "tokenizer_error"
SEMANTIC_RATE = SEMANTIC_SAMPLE_RATE / SEMANTIC_HOP  # 50 frames per second
CODEC_RATE = CODEC_SAMPLE_RATE / CODEC_HOP  # 75 frames per second


class Rejected(Exception):
    """An utterance that cannot be tokenized: ``code`` and a detail."""

    def __init__(self, code: str, detail: str):
        super().__init__(f"{code}: {detail}")


def read_clip(path: str, sample_rate: int) -> np.ndarray:
    """Mono float32 samples of ``path``; raises :class:`Rejected` if unreadable or not mono at
    ``sample_rate``."""
    try:
        audio, rate = load_audio(path)
    except Exception as err:  # noqa: BLE001 - any decoding failure rejects the utterance
        raise Rejected(UNREADABLE_AUDIO, f"{path}: {err}") from err
    if rate != sample_rate:
        raise Rejected(BAD_AUDIO, f"{path} is sampled at {rate} Hz, expected {sample_rate} Hz")
    if audio.shape[0] != 1 or audio.shape[1] == 0 or not np.all(np.isfinite(audio)):
        raise Rejected(BAD_AUDIO, f"{path} is not finite mono audio (shape {audio.shape})")
    return audio[0]


def check_frames(n_frames: int, duration_s: float, rate: float, stream: str) -> None:
    """Raise :class:`Rejected` unless ``n_frames`` is within one frame of ``duration_s * rate``."""
    expected = float(duration_s) * rate
    if n_frames == 0:
        raise Rejected(EMPTY_IDS, f"no {stream} frames")
    if abs(n_frames - expected) > 1.0 + 1e-6 and not (n_frames == 1 and expected < 1):
        raise Rejected(FRAME_MISMATCH, f"{n_frames} {stream} frames for {duration_s:.3f} s "
                                       f"(expected {expected:.1f} +- 1 at {rate:g} Hz)")


def train_rows(utterances: pd.DataFrame, what: str) -> pd.DataFrame:
    """The train split, or a ValueError saying that ``what`` cannot be fitted without it."""
    check_utterances(utterances)
    train = utterances[utterances["split"] == "train"]
    if train.empty:
        raise ValueError(f"no train-split utterances to fit {what} on "
                         f"({len(utterances)} utterance(s), all in validation)")
    return train


class _Meter:
    """A tqdm bar in audio seconds (rate: audio-s/s) and the stage's throughput figures."""

    def __init__(self, seconds: float, desc: str, progress: bool):
        self.bar = progress_bar(total=float(seconds), unit="audio-s", desc=desc,
                        disable=not progress, dynamic_ncols=True)
        self.started = time.perf_counter()
        self.audio_s = 0.0

    def add(self, seconds: float) -> None:
        self.audio_s += float(seconds)
        self.bar.update(round(float(seconds), 2))

    def stats(self, **counts: int) -> dict[str, float]:
        self.bar.close()
        wall = max(time.perf_counter() - self.started, 1e-9)
        return {"audio_seconds": self.audio_s, "wall_seconds": wall,
                "audio_s_per_s": self.audio_s / wall, **{k: float(v) for k, v in counts.items()}}


def _base(row: Any) -> dict[str, Any]:
    return {"utterance_id": row.utterance_id, "speaker": row.speaker, "split": row.split}


def check_some_tokenized(stage: str, n_tokenized: int, rejects: list[dict] | pd.DataFrame
                         ) -> None:
    """A ValueError (counting the reasons, naming the first) when every utterance of the
    corpus was rejected by ``stage``."""
    if n_tokenized or not len(rejects):
        return
    rejects = rejects.to_dict("records") if isinstance(rejects, pd.DataFrame) else rejects
    reasons = Counter(r["reason"].split(":", 1)[0] for r in rejects)
    raise ValueError(f"no utterance could be tokenized by the {stage} stage "
                     f"({len(rejects)} rejected: {dict(reasons)}); first: "
                     f"{rejects[0]['utterance_id']}: {rejects[0]['reason']}")


def text_id_stats(table: pd.DataFrame, tokenizer: TextTokenizer) -> dict[str, float]:
    """Ids in a ``text_tokens`` table, the share of unknown ids, the vocabulary size."""
    unk_id = getattr(tokenizer, "unk_id", None)
    n_ids = sum(len(ids) for ids in table["text_ids"])
    n_unknown = (sum(int(np.sum(ids == unk_id)) for ids in table["text_ids"])
                 if unk_id is not None else 0)
    return {"n_tokens": float(n_ids), "unknown_fraction": n_unknown / max(n_ids, 1),
            "vocab_size": float(tokenizer.text_vocab_size)}


def _tokenize_rows(utterances: pd.DataFrame, stage: str, encode: Callable[[Any], dict],
                   progress: bool, require_some: bool = True
                   ) -> tuple[list[dict], pd.DataFrame, dict[str, float]]:
    """``encode(row) -> row dict`` for every utterance; :class:`Rejected` rows go to rejects."""
    check_utterances(utterances)
    rows, rejects = [], []
    meter = _Meter(utterances["duration_s"].sum(), stage, progress)
    for row in utterances.itertuples(index=False):
        try:
            rows.append({**_base(row), **encode(row)})
        except Rejected as rejected:
            rejects.append({"utterance_id": row.utterance_id, "stage": stage,
                            "reason": str(rejected)})
        meter.add(row.duration_s)
    stats = meter.stats(n_tokenized=len(rows), n_rejected=len(rejects))
    if require_some:
        check_some_tokenized(stage, len(rows), rejects)
    return rows, rejected_table(rejects), stats


def _guarded(encode: Callable[[Any], dict]) -> Callable[[Any], dict]:
    def run(row: Any) -> dict:
        try:
            return encode(row)
        except Rejected:
            raise
        except (ValueError, RuntimeError, OSError) as err:
            raise Rejected(TOKENIZER_ERROR, f"{type(err).__name__}: {err}") from err
    return run


# ---- text -------------------------------------------------------------------------------------
def fit_text_tokenizer(utterances: pd.DataFrame, config: TextConfig) -> TextTokenizer:
    """The text tokenizer of ``config``; vocabularies are built from train-split texts."""
    texts = [] if config.kind == "bark" else train_rows(utterances, "the text vocabulary")["text"]
    return config.build(list(texts))


def tokenize_text(utterances: pd.DataFrame, tokenizer: TextTokenizer, progress: bool = True,
                  require_some: bool = True
                  ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]:
    """``text_tokens`` (raw ids in ``[0, text_vocab_size)``), rejects and stats (incl. the
    share of unknown tokens for vocabularies built from data)."""
    def encode(row: Any) -> dict:
        ids = np.asarray(tokenizer.encode_raw(str(row.text)), np.int32)
        if ids.size == 0:
            raise Rejected(EMPTY_IDS, f"the {tokenizer.kind} tokenizer gave no ids for "
                                      f"{str(row.text)[:40]!r}")
        return {"text": str(row.text), "text_ids": ids}

    rows, rejects, stats = _tokenize_rows(utterances, "text", _guarded(encode), progress,
                                          require_some)
    table = text_tokens_table(rows)
    stats.update(text_id_stats(table, tokenizer))
    return table, rejects, stats


# ---- semantic ---------------------------------------------------------------------------------
def _threads_for(extractor: Any):
    """MFCC ops are tiny: torch's intra-op threads only add synchronisation (many times slower
    on a busy machine), so they run on one thread."""
    return intra_op_threads(1) if extractor.kind == "mfcc" else nullcontext()


def _fit_features(train: pd.DataFrame, extractor: Any, config: SemanticConfig,
                  progress: bool) -> tuple[list[np.ndarray], int, dict[str, float]]:
    """Features of train clips in a seeded random order until ``max_fit_frames``."""
    feats, n_frames = [], 0
    meter = _Meter(train["duration_s"].sum(), "semantic features (fit)", progress)
    for k in np.random.default_rng(config.seed).permutation(len(train)):
        row = train.iloc[int(k)]
        meter.add(row["duration_s"])
        try:
            feats.append(extractor(read_clip(row["audio_16k_path"], SEMANTIC_SAMPLE_RATE)))
        except (Rejected, ValueError) as err:
            logger.warning("semantic fit skips %s: %s", row["utterance_id"], err)
            continue
        n_frames += len(feats[-1])
        if n_frames >= config.max_fit_frames:
            break
    meter.bar.total = round(meter.audio_s, 2)
    stats = meter.stats(n_fit_utterances=len(feats),
                        n_fit_frames=min(n_frames, config.max_fit_frames))
    return feats, n_frames, stats


def fit_semantic_tokenizer(utterances: pd.DataFrame, config: SemanticConfig,
                           progress: bool = True) -> tuple[SemanticTokenizer, dict[str, float]]:
    """Extract features of train-split utterances (a seeded random order, until
    ``max_fit_frames``) and fit the k-means quantizer on them. Unreadable clips are skipped
    here (the tokenize step rejects them). ``quantizer=bark_hubert`` fits nothing: it loads
    the learned quantizer and the HuBERT weights."""
    if config.quantizer == "bark_hubert":
        tokenizer = config.build_bark_tokenizer()
        q = tokenizer.quantizer
        logger.info("semantic ids: Bark-compatible quantizer %s (version %d, sha256 %s...) over "
                    "%s layer %d (%s weights)", q.path, q.version, q.digest[:12],
                    tokenizer.extractor.bundle, tokenizer.extractor.layer,
                    tokenizer.extractor.weights_format)
        return tokenizer, {"vocab_size": float(q.n_clusters), "quantizer_version": float(q.version)}
    train = train_rows(utterances, "the semantic quantizer")
    # Checked before the (slow) feature extraction: the durations bound the frames it can give.
    most_frames = int(np.ceil(train["duration_s"].astype(float) * SEMANTIC_RATE).sum()) + len(train)
    if most_frames < config.n_clusters:
        raise ValueError(f"the train split's {len(train)} clip(s) give at most {most_frames} "
                         f"feature frames, fewer than n_clusters={config.n_clusters}: lower "
                         "tokenize.semantic.n_clusters or add audio")
    extractor = config.build_extractor()
    with _threads_for(extractor):
        feats, n_frames, stats = _fit_features(train, extractor, config, progress)
    if n_frames < config.n_clusters:
        raise ValueError(f"only {n_frames} feature frames in the train split, fewer than "
                         f"n_clusters={config.n_clusters}: lower n_clusters or add audio")
    started = time.perf_counter()
    quantizer = fit_semantic_quantizer(feats, config.n_clusters, config.max_fit_frames,
                                       config.seed, **config.kmeans_options())
    stats.update(kmeans_seconds=time.perf_counter() - started, kmeans_inertia=quantizer.inertia_,
                 kmeans_iterations=float(quantizer.n_iter_))
    return SemanticTokenizer(extractor, quantizer), stats


def tokenize_semantic(utterances: pd.DataFrame, tokenizer: SemanticTokenizer,
                      progress: bool = True, require_some: bool = True
                      ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]:
    """``semantic_tokens`` (int32 ids at 50 Hz), rejects and stats."""
    def encode(row: Any) -> dict:
        ids = tokenizer.encode(read_clip(row.audio_16k_path, SEMANTIC_SAMPLE_RATE))
        check_frames(len(ids), row.duration_s, SEMANTIC_RATE, "semantic")
        return {"duration_s": float(row.duration_s), "semantic_ids": ids}

    with _threads_for(tokenizer.extractor):
        rows, rejects, stats = _tokenize_rows(utterances, "semantic", _guarded(encode), progress,
                                              require_some)
    return semantic_tokens_table(rows), rejects, stats


# ---- codec ------------------------------------------------------------------------------------
def codec_init_audio(utterances: pd.DataFrame, max_frames: int, seed: int = 0) -> list[np.ndarray]:
    """24 kHz train-split clips (a seeded random order) covering about ``max_frames`` codec
    frames: what random codec weights initialise their codebooks on."""
    train = train_rows(utterances, "the random codec's codebooks")
    clips, frames = [], 0
    for k in np.random.default_rng(seed).permutation(len(train)):
        try:
            clips.append(read_clip(train.iloc[int(k)]["audio_24k_path"], CODEC_SAMPLE_RATE))
        except Rejected as err:
            logger.warning("codec init skips %s: %s", train.iloc[int(k)]["utterance_id"], err)
            continue
        frames += len(clips[-1]) // CODEC_HOP
        if frames >= max_frames:
            break
    return clips


def build_codec(utterances: pd.DataFrame, config: CodecConfig) -> Codec:
    """The codec of ``config``; the mel codec and random EnCodec weights are fitted on
    train-split audio."""
    frames = config.train_frames_needed()
    init_audio = codec_init_audio(utterances, frames, config.seed) if frames else None
    codec = config.build(init_audio)
    if codec.weights_source == "random":
        logger.warning("codec_weights=random: codec tokens come from an EnCodec with RANDOM "
                       "weights (offline stand-in); they do not match the official codec")
    else:
        logger.info("codec_weights=%s: %s", codec.weights_source, codec_description(codec))
    return codec


def _groups(utterances: pd.DataFrame, seconds: float) -> Iterator[pd.DataFrame]:
    start, total = 0, 0.0
    durations = utterances["duration_s"].to_numpy(float)
    for end, d in enumerate(durations, start=1):
        total += d
        if total >= seconds:
            yield utterances.iloc[start:end]
            start, total = end, 0.0
    if start < len(utterances):
        yield utterances.iloc[start:]


def tokenize_codec(utterances: pd.DataFrame, codec: CodecTokenizer, group_seconds: float = 600.0,
                   progress: bool = True, require_some: bool = True
                   ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]:
    """``codec_tokens`` (int16 codes, 75 Hz), rejects and stats. Audio is read and encoded
    ``group_seconds`` at a time, batched by the codec (see :class:`CodecTokenizer`)."""
    check_utterances(utterances)
    by_id: dict[str, np.ndarray] = {}
    failed: dict[str, str] = {}
    meter = _Meter(utterances["duration_s"].sum(), "codec", progress)
    for group in _groups(utterances, group_seconds):
        clips = {}
        for row in group.itertuples(index=False):
            try:
                clips[row.utterance_id] = read_clip(row.audio_24k_path, CODEC_SAMPLE_RATE)
            except Rejected as err:
                failed[row.utterance_id] = str(err)
        try:
            by_id.update(zip(clips, codec.encode_batch(list(clips.values())), strict=True))
        except (ValueError, RuntimeError) as err:  # one bad clip: retry the group one by one
            for uid, clip in clips.items():
                try:
                    by_id[uid] = codec.encode(clip)
                except (ValueError, RuntimeError) as one:
                    failed[uid] = f"{TOKENIZER_ERROR}: {type(one).__name__}: {one}"
            logger.warning("codec batch failed (%s); encoded its clips one by one", err)
        meter.add(group["duration_s"].sum())

    def encode(row: Any) -> dict:
        if row.utterance_id in failed:
            code, detail = failed[row.utterance_id].split(": ", 1)
            raise Rejected(code, detail)
        codes = by_id[row.utterance_id]
        check_frames(codes.shape[1], row.duration_s, CODEC_RATE, "codec")
        return {"duration_s": float(row.duration_s), "codes": codes}

    rows, rejects, _ = _tokenize_rows(utterances, "codec", encode, False, require_some)
    stats = meter.stats(n_tokenized=len(rows), n_rejected=len(rejects))
    return codec_tokens_table(rows), rejects, stats


def combine_rejects(*tables: pd.DataFrame) -> pd.DataFrame:
    """One rejects table (utterance_id, stage, reason) from the stages' tables, in order."""
    frames = [t for t in tables if len(t)]
    return pd.concat(frames, ignore_index=True) if frames else rejected_table([])
