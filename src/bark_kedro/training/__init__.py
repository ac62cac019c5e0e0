"""Kedro-agnostic training of Bark's three stages: layouts, batching, optimizer, mesh,
checkpoints and the training loop."""

from bark_kedro.models import BarkVocab
from bark_kedro.training.adapters import load_lora_run
from bark_kedro.training.batching import BucketBatcher, DataPosition, best_bucket_lengths
from bark_kedro.training.config import (
    MeshConfig,
    ModelInitConfig,
    OptimizerConfig,
    StageDataConfig,
    TrainConfig,
)
from bark_kedro.training.examples import build_stage_examples, make_batcher
from bark_kedro.training.layouts import Example
from bark_kedro.training.loop import (
    MetricsCallback,
    TrainingDiverged,
    TrainResult,
    evaluate_examples,
    train,
)
from bark_kedro.training.mesh import (
    device_facts,
    is_primary,
    make_mesh,
    maybe_initialize_distributed,
)
from bark_kedro.training.model_init import (
    FrozenParam,
    build_stage_model,
    count_params,
    lora_model,
    stage_vocabulary,
)
from bark_kedro.training.run import StageRun, stage_metrics, train_stage_from_tables
from bark_kedro.training.state import TrainState


def stage_vocab(text_vocab_size: int, semantic_vocab_size: int, codebook_size: int = 1024):
    """The token layout of a from-scratch model (``BarkVocab.build``)."""
    return BarkVocab.build(text_vocab_size, semantic_vocab_size, codebook_size)


__all__ = [
    "BucketBatcher",
    "DataPosition",
    "Example",
    "FrozenParam",
    "MetricsCallback",
    "MeshConfig",
    "ModelInitConfig",
    "OptimizerConfig",
    "StageDataConfig",
    "StageRun",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "TrainingDiverged",
    "best_bucket_lengths",
    "build_stage_examples",
    "build_stage_model",
    "count_params",
    "lora_model",
    "device_facts",
    "evaluate_examples",
    "is_primary",
    "load_lora_run",
    "make_batcher",
    "make_mesh",
    "maybe_initialize_distributed",
    "stage_metrics",
    "stage_vocab",
    "stage_vocabulary",
    "train",
    "train_stage_from_tables",
]
