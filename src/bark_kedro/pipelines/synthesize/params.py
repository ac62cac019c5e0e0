"""Typed parameters of generation (shared by evaluate and synthesize) and of synthesize."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from bark_kedro.generation import GenerationConfig


class GenerationParams(BaseModel):
    """``params:generation``: how the three stages sample.

    ``fit_windows_to_models`` sets the coarse and fine windows to those the training layouts
    used for the models' block sizes (Bark's own windows at block size 1024); turn it off to
    use the windows of ``config`` as given.
    """

    model_config = ConfigDict(extra="forbid")

    config: GenerationConfig = Field(default_factory=GenerationConfig)
    fit_windows_to_models: bool = True
    bfloat16: bool = False


class SynthesizeParams(BaseModel):
    """``params:synthesize``: what to say, in which voice, from which seed."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1)
    voice_prompt: str | None = None
    seed: int = Field(default=0, ge=0)
