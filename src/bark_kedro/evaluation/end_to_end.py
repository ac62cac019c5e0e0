"""Held-out end-to-end synthesis of trained stages, compared with the recordings.

Kedro-agnostic glue between the generation library (the three loops) and the audio
metrics here. The teacher-forced metrics per stage are training-library work
(:func:`bark_kedro.training.run.stage_metrics`).
"""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd

from bark_kedro.evaluation.audio_metrics import compare_utterance
from bark_kedro.evaluation.report import UtteranceEvaluation
from bark_kedro.generation.sampling import row_keys
from bark_kedro.generation.synthesis import Synthesizer
from bark_kedro.generation.voice import VoicePrompt
from bark_kedro.tokenizers.shards import ShardedTable, as_frame
from bark_kedro.tokenizers.tables import codes_matrix as codes_of

VOICE_CHOICES = ("same_speaker", "none")


def _prompt_of(semantic_row: pd.Series, codec_row: pd.Series, n_coarse: int) -> VoicePrompt:
    codes = codes_of(codec_row).astype(np.int64)
    semantic = np.asarray(semantic_row["semantic_ids"], np.int64)
    return VoicePrompt(semantic, codes[:n_coarse], codes)


def same_speaker_prompts(
    targets: pd.DataFrame, semantic_tokens: pd.DataFrame | ShardedTable,
    codec_tokens: pd.DataFrame | ShardedTable, n_coarse: int,
) -> list[VoicePrompt | None]:
    """For each target utterance, a voice prompt from a training utterance of its speaker
    (the first in table order), or ``None`` when the speaker has none."""
    semantic_tokens, codec_tokens = as_frame(semantic_tokens), as_frame(codec_tokens)
    semantic = semantic_tokens[semantic_tokens["split"] == "train"].drop_duplicates("speaker")
    codec = codec_tokens.set_index("utterance_id")
    first = {row["speaker"]: row for _, row in semantic.iterrows() if row["utterance_id"] in codec.index}
    prompts = []
    for speaker in targets["speaker"]:
        row = first.get(speaker)
        prompts.append(None if row is None else _prompt_of(
            row, codec.loc[row["utterance_id"]].to_dict() | {"utterance_id": row["utterance_id"]},
            n_coarse))
    return prompts


def heldout_targets(
    utterances: pd.DataFrame, codec_tokens: pd.DataFrame | ShardedTable, n_utterances: int
) -> pd.DataFrame:
    """The first ``n_utterances`` validation utterances (by id) that have codec tokens."""
    if isinstance(codec_tokens, ShardedTable):
        codec_tokens = codec_tokens.index  # the ids are enough
    valid = utterances[(utterances["split"] == "validation")
                       & utterances["utterance_id"].isin(codec_tokens["utterance_id"])]
    if valid.empty:
        raise ValueError("no validation utterances with codec tokens to synthesize")
    return valid.sort_values("utterance_id").head(n_utterances).reset_index(drop=True)


def synthesize_heldout(
    synthesizer: Synthesizer,
    targets: pd.DataFrame,
    semantic_tokens: pd.DataFrame | ShardedTable,
    codec_tokens: pd.DataFrame | ShardedTable,
    voice: str = "same_speaker",
    seed: int = 0,
) -> list[UtteranceEvaluation]:
    """Synthesize the texts of ``targets`` (one batch) and compare each with its recording
    passed through the same codec (its ``codec_tokens`` decoded)."""
    if voice not in VOICE_CHOICES:
        raise ValueError(f"voice must be one of {VOICE_CHOICES}, got {voice!r}")
    semantic_tokens, codec_tokens = as_frame(semantic_tokens), as_frame(codec_tokens)
    n_coarse = synthesizer.vocab.n_coarse_codebooks
    prompts = (same_speaker_prompts(targets, semantic_tokens, codec_tokens, n_coarse)
               if voice == "same_speaker" else [None] * len(targets))
    texts = [str(t) for t in targets["text"]]
    keys = row_keys(jax.random.key(seed), len(texts))
    generated = synthesizer.generate_tokens(texts, prompts, keys, progress=True)
    codec = codec_tokens.set_index("utterance_id")
    out = []
    for (_, target), tokens in zip(targets.iterrows(), generated, strict=True):
        ref_codes = codes_of(codec.loc[target["utterance_id"]].to_dict()
                             | {"utterance_id": target["utterance_id"]})
        ref_audio = synthesizer.decode(ref_codes)
        if tokens is None:
            out.append(UtteranceEvaluation(target["utterance_id"], target["text"], ref_audio,
                                           None, {"no_audio": 1.0}))
            continue
        synth_audio = synthesizer.decode(tokens.fine)
        metrics = compare_utterance(synth_audio, ref_audio, tokens.fine, ref_codes)
        out.append(UtteranceEvaluation(target["utterance_id"], target["text"], ref_audio,
                                       synth_audio, metrics))
    return out
