"""Voice prompts: Bark's ``.npz`` history prompts, and making one from a recording.

A prompt holds the tokens of a short utterance of the target voice: ``semantic_prompt``
``(T,)``, ``coarse_prompt`` ``(n_coarse, T')`` and ``fine_prompt`` ``(n_fine, T')``; each
stage continues from its part. The project's own tokenizers make one from any
recording (voice cloning): the semantic tokenizer at 16 kHz, the codec at 24 kHz.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bark_kedro.audio.processing import resample
from bark_kedro.models.tokens import BarkVocab

NPZ_KEYS = ("semantic_prompt", "coarse_prompt", "fine_prompt")
SEMANTIC_SAMPLE_RATE = 16_000
CODEC_SAMPLE_RATE = 24_000


def _ints(values, name: str, ndim: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integer ids, got dtype {arr.dtype}")
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must not hold negative ids, got {arr.min()}")
    return arr.astype(np.int64)


@dataclass(frozen=True, eq=False)
class VoicePrompt:
    """Tokens of one utterance of a voice: ``semantic (T,)``, ``coarse (n_coarse, T')``,
    ``fine (n_fine, T')`` (the coarse codebooks are the first rows of the fine ones)."""

    semantic: np.ndarray
    coarse: np.ndarray
    fine: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "semantic", _ints(self.semantic, "semantic_prompt", 1))
        object.__setattr__(self, "coarse", _ints(self.coarse, "coarse_prompt", 2))
        object.__setattr__(self, "fine", _ints(self.fine, "fine_prompt", 2))
        if len(self.semantic) == 0:
            raise ValueError("semantic_prompt must not be empty")
        if self.coarse.shape[0] > self.fine.shape[0]:
            raise ValueError(f"coarse_prompt has more codebooks ({self.coarse.shape[0]}) than "
                             f"fine_prompt ({self.fine.shape[0]})")

    def check(self, vocab: BarkVocab) -> VoicePrompt:
        """Raise unless the ids fit ``vocab``'s semantic vocabulary, codebooks and sizes."""
        parts = [("semantic_prompt", self.semantic, vocab.semantic_vocab_size, None),
                 ("coarse_prompt", self.coarse, vocab.codebook_size, vocab.n_coarse_codebooks),
                 ("fine_prompt", self.fine, vocab.codebook_size, vocab.n_fine_codebooks)]
        for name, arr, high, rows in parts:
            if rows is not None and arr.shape[0] != rows:
                raise ValueError(f"{name} must have {rows} codebooks, got shape {arr.shape}")
            if arr.size and arr.max() >= high:
                raise ValueError(f"{name} ids must be < {high}, got {arr.max()}")
        return self

    @property
    def coarse_history(self) -> tuple[np.ndarray, np.ndarray]:
        """``(semantic, coarse)``, the coarse stage's history."""
        return self.semantic, self.coarse

    def to_npz_dict(self) -> dict[str, np.ndarray]:
        """Bark's keys and dtypes (int64 semantic and coarse, int32 fine)."""
        return {"semantic_prompt": self.semantic.astype(np.int64),
                "coarse_prompt": self.coarse.astype(np.int64),
                "fine_prompt": self.fine.astype(np.int32)}


def load_voice_prompt(path: str | Path) -> VoicePrompt:
    """Read a Bark ``.npz`` prompt (``semantic_prompt``, ``coarse_prompt``, ``fine_prompt``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"voice prompt {str(path)!r} does not exist")
    try:
        data = np.load(path, allow_pickle=False)
        if not hasattr(data, "files"):
            raise ValueError("it is a single array, not an .npz archive")
        with data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
        raise ValueError(f"cannot read voice prompt {str(path)!r}: {err}") from err
    missing = [k for k in NPZ_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"voice prompt {str(path)!r} lacks {missing} (has {sorted(arrays)})")
    return VoicePrompt(arrays["semantic_prompt"], arrays["coarse_prompt"], arrays["fine_prompt"])


def save_voice_prompt(path: str | Path, prompt: VoicePrompt) -> Path:
    """Write ``prompt`` in Bark's ``.npz`` format; the file appears whole or not at all."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **prompt.to_npz_dict())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def voice_prompt_from_audio(audio: np.ndarray, sample_rate: int, semantic_tokenizer, codec,
                            n_coarse_codebooks: int = 2) -> VoicePrompt:
    """A prompt from a recording of the voice (mono, any rate; a few seconds is enough).

    ``semantic_tokenizer.encode`` gets the audio at 16 kHz, ``codec.encode`` at 24 kHz
    (the project's :class:`~bark_kedro.tokenizers.semantic.SemanticTokenizer` and
    :class:`~bark_kedro.tokenizers.codec.CodecTokenizer`).
    """
    audio = np.asarray(audio, np.float32)
    if audio.ndim != 1 or audio.size == 0:
        raise ValueError(f"audio must be a non-empty mono (samples,) array, got {audio.shape}")
    if not np.all(np.isfinite(audio)):
        raise ValueError("audio holds NaN or infinite samples")
    semantic = np.asarray(semantic_tokenizer.encode(resample(audio, sample_rate,
                                                             SEMANTIC_SAMPLE_RATE)))
    codes = np.asarray(codec.encode(resample(audio, sample_rate, CODEC_SAMPLE_RATE)))
    return VoicePrompt(semantic, codes[:n_coarse_codebooks], codes)


def pick_prompt_utterance(semantic_tokens, speaker: str | None = None,
                          max_seconds: float = 8.0) -> str:
    """The id of a training utterance of ``speaker`` (or of the only speaker) to make a voice
    prompt from: the longest up to ``max_seconds`` (Bark keeps about the last 5 s of a prompt),
    else the shortest. ``semantic_tokens`` is the tokenize pipeline's table."""
    from bark_kedro.tokenizers.shards import as_frame

    table = as_frame(semantic_tokens)
    train = table[table["split"] == "train"]
    speakers = sorted(train["speaker"].unique())
    if speaker is None:
        if len(speakers) != 1:
            raise ValueError(f"the corpus has {len(speakers)} speakers with training utterances "
                             f"({speakers[:5]}...): name the voice prompt's speaker")
        speaker = speakers[0]
    clips = train[train["speaker"] == speaker]
    if clips.empty:
        raise ValueError(f"speaker {speaker!r} has no training utterances to make a voice prompt "
                         f"from (speakers: {speakers[:5]})")
    fitting = clips[clips["duration_s"] <= max_seconds]
    chosen = (fitting.sort_values(["duration_s", "utterance_id"], ascending=[False, True])
              if len(fitting) else clips.sort_values(["duration_s", "utterance_id"]))
    return str(chosen.iloc[0]["utterance_id"])


def voice_prompt_from_tokens(semantic_tokens, codec_tokens, utterance_id: str,
                             n_coarse_codebooks: int = 2) -> VoicePrompt:
    """The voice prompt of one tokenized utterance: its semantic ids and codec codes exactly as
    the tokenize pipeline stored them (so in the models' own token spaces)."""
    from bark_kedro.tokenizers.shards import as_frame
    from bark_kedro.tokenizers.tables import codes_matrix

    semantic, codec = as_frame(semantic_tokens), as_frame(codec_tokens)
    rows = [t[t["utterance_id"] == utterance_id] for t in (semantic, codec)]
    if any(r.empty for r in rows):
        raise ValueError(f"utterance {utterance_id!r} lacks semantic or codec tokens")
    codes = codes_matrix(rows[1].iloc[0]).astype(np.int64)
    return VoicePrompt(np.asarray(rows[0].iloc[0]["semantic_ids"], np.int64),
                       codes[:n_coarse_codebooks], codes)
