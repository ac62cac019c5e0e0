"""Typed parameters of the evaluate pipeline."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class EvaluateParams(BaseModel):
    """``params:evaluate``: how many held-out utterances to synthesize, in which voice.

    ``voice``: ``same_speaker`` prompts each text with a training utterance of its speaker
    (the comparison with the recording is then about the model, not the voice), ``none``
    generates without a prompt.
    """

    model_config = ConfigDict(extra="forbid")

    n_utterances: int = Field(default=8, ge=1)
    voice: Literal["same_speaker", "none"] = "same_speaker"
    seed: int = Field(default=0, ge=0)
    tokens_per_batch: int = Field(default=4096, ge=1)
