"""Typed parameters of the ingest pipeline, validated by Kedro when a run starts."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from bark_kedro.audio.corpus import SourceConfig
from bark_kedro.audio.demo_corpus import DemoCorpusConfig
from bark_kedro.audio.ingest import IngestConfig


class IngestParams(BaseModel):
    """``params:ingest`` in ``conf/<env>/parameters_ingest.yml``."""

    model_config = ConfigDict(extra="forbid")

    source: SourceConfig = Field(default_factory=SourceConfig)
    demo_corpus: DemoCorpusConfig = Field(default_factory=DemoCorpusConfig)
    processing: IngestConfig = Field(default_factory=IngestConfig)
    output_dir: str = "data/02_intermediate"
    progress: bool = True
