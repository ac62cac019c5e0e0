"""Typed parameters of the tokenize pipeline, validated by Kedro when a run starts."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from bark_kedro.tokenizers.config import CodecConfig, SemanticConfig, TextConfig


class TokenizeParams(BaseModel):
    """``params:tokenize`` in ``conf/<env>/parameters_tokenize.yml``."""

    model_config = ConfigDict(extra="forbid")

    text: TextConfig = Field(default_factory=TextConfig)
    semantic: SemanticConfig = Field(default_factory=SemanticConfig)
    codec: CodecConfig = Field(default_factory=CodecConfig)
    progress: bool = True
