"""Held-out loss, perplexity and top-1/top-10 accuracy of a stage model."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import jax
from jax.sharding import Mesh

from bark_kedro.training.config import MeshConfig, StageDataConfig
from bark_kedro.training.data import make_batcher, max_positions
from bark_kedro.training.layouts import Example
from bark_kedro.training.mesh import batch_width, global_batch, make_mesh, state_shardings
from bark_kedro.training.model_init import check_stage_model
from bark_kedro.training.state import ModelParts, split_model
from bark_kedro.training.steps import make_eval_step


class Evaluator:
    """Fixed validation batches and a compiled eval step, reused at every evaluation.

    ``max_batches`` > 0 keeps that many batches of a seeded shuffle (the same ones
    every time); 0 evaluates every example.
    """

    def __init__(
        self,
        parts: ModelParts,
        stage: str,
        examples: Sequence[Example],
        mesh: Mesh,
        param_shardings: tuple,
        tokens_per_batch: int,
        data_config: StageDataConfig | None = None,
        max_batches: int = 0,
        max_length: int | None = None,
    ):
        if not examples:
            raise ValueError("no validation examples to evaluate on")
        self.mesh = mesh
        batcher = make_batcher(
            examples, data_config or StageDataConfig(), tokens_per_batch, batch_width(mesh),
            seed=0, max_length=max_length,
        )
        batches = batcher.iterate(examples)
        n_batches = len(batcher.plan(0))
        if max_batches:
            n_batches = min(n_batches, max_batches)
        self.batches = []
        for _, batch in itertools.islice(batches, n_batches):
            batch = dict(batch)
            batch.pop("lengths")
            self.batches.append(batch)
        self.padding_fraction = batcher.padding_fraction(0)
        self._step = make_eval_step(parts, stage, parts.config.vocab, mesh, param_shardings)

    def __call__(self, frozen: dict, trainable: dict) -> dict[str, float]:
        """loss, perplexity, top1, top10 (fractions) and n_tokens over the batches."""
        totals: dict[str, float] = {}
        for batch in self.batches:
            stats = self._step(frozen, trainable, global_batch(batch, self.mesh))
            for key, value in jax.device_get(stats).items():
                totals[key] = totals.get(key, 0.0) + float(value)
        n = max(totals["n_tokens"], 1.0)
        loss = totals["loss_sum"] / n
        return {
            "loss": loss,
            "perplexity": math.exp(min(loss, 700.0)),
            "top1": totals["top1"] / n,
            "top10": totals["top10"] / n,
            "n_tokens": int(totals["n_tokens"]),
        }


def evaluate_examples(
    model,
    examples: Sequence[Example],
    stage: str,
    tokens_per_batch: int = 4096,
    mesh_config: MeshConfig | None = None,
    data_config: StageDataConfig | None = None,
) -> dict[str, float]:
    """Loss, perplexity, top-1/top-10 accuracy and token count of ``model`` on ``examples``."""
    check_stage_model(model, stage, model.config.vocab)
    mesh = make_mesh(mesh_config)
    parts, frozen, trainable = split_model(model)
    shardings = (state_shardings(frozen, mesh), state_shardings(trainable, mesh))
    frozen, trainable = jax.device_put(frozen, shardings[0]), jax.device_put(trainable, shardings[1])
    evaluator = Evaluator(
        parts, stage, examples, mesh, shardings, tokens_per_batch, data_config,
        max_length=max_positions(model.config),
    )
    return evaluator(frozen, trainable) | {"padding_fraction": float(evaluator.padding_fraction)}
