"""Typed parameters of the tokenize pipeline, validated by Kedro when a run starts."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bark_kedro.tokenizers.config import CodecConfig, SemanticConfig, TextConfig
from bark_kedro.tokenizers.ray_engine import RayEngineConfig


class TokenizeParams(BaseModel):
    """``params:tokenize`` in ``conf/<env>/parameters_tokenize.yml``."""

    model_config = ConfigDict(extra="forbid")

    text: TextConfig = Field(default_factory=TextConfig)
    semantic: SemanticConfig = Field(default_factory=SemanticConfig)
    codec: CodecConfig = Field(default_factory=CodecConfig)
    # local: this process tokenizes every utterance; ray: actor pools on a Ray cluster
    engine: Literal["local", "ray"] = "local"
    ray: RayEngineConfig = Field(default_factory=RayEngineConfig)
    progress: bool = True
