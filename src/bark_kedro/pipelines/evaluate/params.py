"""Typed parameters of the evaluate pipeline."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bark_kedro.evaluation.hearing import HearingConfig


class EvaluateParams(BaseModel):
    """``params:evaluate``: how many held-out utterances to synthesize, in which voice.

    ``voice``: ``same_speaker`` prompts each text with a training utterance of its speaker
    (the comparison with the recording is then about the model, not the voice), ``none``
    generates without a prompt. ``hearing``: the ASR / speaker / MOS models that hear the
    synthesized audio, the codec round trip and the original recordings.
    """

    model_config = ConfigDict(extra="forbid")

    n_utterances: int = Field(default=8, ge=1)
    voice: Literal["same_speaker", "none"] = "same_speaker"
    seed: int = Field(default=0, ge=0)
    tokens_per_batch: int = Field(default=4096, ge=1)
    hearing: HearingConfig = Field(default_factory=HearingConfig)
