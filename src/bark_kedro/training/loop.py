"""The training loop: batches -> jitted steps -> metrics, evaluations and checkpoints.

Deterministic: the data order comes from ``(seed, epoch)``, the dropout key of step
``s`` from ``fold_in(key(seed), s)``, so a run resumed from a checkpoint continues
bit for bit as if it had never stopped.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from bark_kedro.training.config import StageDataConfig, TrainConfig
from bark_kedro.training.data import max_positions
from bark_kedro.training.layouts import Example
from bark_kedro.training.mesh import device_facts, is_primary
from bark_kedro.training.model_init import check_stage_model, count_params
from bark_kedro.training.session import TrainingDiverged, TrainSession, host_copy

__all__ = ["TrainResult", "TrainingDiverged", "train"]
MetricsCallback = Callable[[int, dict[str, float]], None]


@dataclass
class TrainResult:
    """The trained model (parameters on the default device), a summary and the history:
    ``train`` (per step of this process), ``eval`` and ``epochs`` (padding per epoch)."""

    model: Any
    summary: dict[str, Any]
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def _check_inputs(model, train_examples, val_examples, config: TrainConfig) -> None:
    check_stage_model(model, config.stage, model.config.vocab)
    for name, examples in (("train_examples", train_examples), ("val_examples", val_examples)):
        if not examples:
            raise ValueError(f"{name} is empty: nothing to train or validate on")
        longest = max(e.length for e in examples)
        if longest > max_positions(model.config):
            raise ValueError(
                f"{name} hold an example of {longest} positions, more than the model's "
                f"{max_positions(model.config)} (block_size {model.config.block_size})"
            )
    if config.stage == "fine":
        lowest = min(int(e.codebook) for e in (*train_examples, *val_examples))
        if lowest < model.config.n_codes_given:
            raise ValueError(
                f"fine examples predict codebook {lowest}, the model's n_codes_given="
                f"{model.config.n_codes_given} starts at {model.config.n_codes_given}"
            )


def train(
    model,
    train_examples: Sequence[Example],
    val_examples: Sequence[Example],
    config: TrainConfig,
    data_config: StageDataConfig | None = None,
    run_dir: str | Path = "run",
    *,
    on_metrics: MetricsCallback | None = None,
    on_eval: MetricsCallback | None = None,
) -> TrainResult:
    """Train ``model`` (see :func:`build_stage_model`) on ``config.stage`` examples.

    ``run_dir`` (a local directory, or a bucket path such as ``gs://...`` that every host
    of a multi-host run sees) receives Orbax checkpoints; if it holds some, training
    resumes from the newest. ``on_metrics(step, metrics)`` gets loss, learning_rate, grad_norm and
    tokens_per_s every ``log_every`` steps, ``on_eval(step, metrics)`` the validation
    loss, perplexity, top1 and top10; both on process 0 only. A non-finite loss or
    gradient norm raises :class:`TrainingDiverged` and keeps the last good checkpoint.
    """
    _check_inputs(model, train_examples, val_examples, config)
    run = TrainSession(model, train_examples, val_examples, config, data_config or StageDataConfig(),
               run_dir)
    primary = is_primary()
    started_at = time.perf_counter()
    if run.step == 0 and not run.history["eval"]:
        initial = run.evaluate()
        if on_eval and primary:
            on_eval(0, initial)
    bar = tqdm(total=config.steps, initial=run.step, disable=not (config.progress and primary),
               desc=f"train {config.stage}", unit="step")
    batches = run.batcher.iterate(train_examples, run.position)
    pending = None
    try:
        while run.step < config.steps:
            clock = time.perf_counter()
            metrics, n_positions = run.dispatch(batches)
            run.step += 1
            if pending is not None:
                _report(run, pending, bar, on_metrics, primary)
            pending = (run.step, metrics, n_positions, clock)
            due_eval = run.step % config.eval_every == 0 or run.step == config.steps
            due_save = run.step % config.checkpoint_every == 0 or run.step == config.steps
            if due_eval or due_save:
                _report(run, pending, bar, on_metrics, primary)
                pending = None
                if due_eval:
                    metrics_eval = run.evaluate()
                    if on_eval and primary:
                        on_eval(run.step, metrics_eval)
                if due_save:
                    run.save()
        if pending is not None:
            _report(run, pending, bar, on_metrics, primary)
    finally:
        bar.close()
        run.checkpoints.wait()
    run.checkpoints.close()
    return _result(run, started_at)


def _report(run: TrainSession, pending, bar, on_metrics, primary: bool) -> None:
    step, metrics, n_positions, clock = pending
    row = run.finish(step, metrics, n_positions, clock)
    bar.update(step - bar.n)
    if step % run.config.log_every == 0:
        bar.set_postfix(loss=f"{row['loss']:.3f}", tok_s=f"{row['tokens_per_s']:,.0f}")
        if on_metrics and primary:
            on_metrics(step, row)


def _result(run: TrainSession, started_at: float) -> TrainResult:
    frozen, trainable = host_copy(run.frozen), host_copy(run.trainable)
    model = run.parts.merge(frozen, trainable)
    evals = run.history["eval"]
    train_rows = run.history["train"]
    summary = {
        "stage": run.stage,
        "steps": run.step,
        "resumed_from_step": run.resumed_from,
        "final_train_loss": train_rows[-1]["loss"] if train_rows else None,
        "padding_fraction": run.batcher.padding_fraction(0),
        "val_padding_fraction": run.evaluator.padding_fraction,
        "tokens_per_s": statistics.median(run.rates[1:] or run.rates or [0.0]),
        "n_train_examples": len(run.train_examples),
        "buckets": [int(b) for b in run.batcher.buckets],
        "elapsed_s": time.perf_counter() - started_at,
        "params": count_params(model),
        "device": device_facts(run.mesh),
    }
    for name, row in (("initial", evals[0] if evals else {}), ("final", evals[-1] if evals else {})):
        for key in ("loss", "top1", "top10", "perplexity"):
            summary[f"{name}_val_{key}"] = row.get(key)
    return TrainResult(model=model, summary=summary, history=run.history)
