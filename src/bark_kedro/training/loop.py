"""The training loop: batches -> jitted steps -> metrics, evaluations and checkpoints.

Deterministic: the data order comes from ``(seed, epoch)``, the dropout key of step
``s`` from ``fold_in(key(seed), s)``, so a run resumed from a checkpoint continues
bit for bit as if it had never stopped.
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from bark_kedro.training.batching import DataPosition
from bark_kedro.training.checkpoints import TrainCheckpoints
from bark_kedro.training.config import StageDataConfig, TrainConfig
from bark_kedro.training.data import make_batcher, max_positions
from bark_kedro.training.evaluate import Evaluator
from bark_kedro.training.layouts import Example
from bark_kedro.training.mesh import (
    batch_width,
    device_facts,
    global_batch,
    is_primary,
    make_mesh,
    state_shardings,
)
from bark_kedro.training.model_init import check_stage_model, count_params
from bark_kedro.training.optimizer import make_optimizer
from bark_kedro.training.state import split_model
from bark_kedro.training.steps import make_train_steps

log = logging.getLogger(__name__)
MetricsCallback = Callable[[int, dict[str, float]], None]


class TrainingDiverged(FloatingPointError):
    """The training loss or gradient norm stopped being finite."""


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


def _host_copy(tree):
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        tree = multihost_utils.process_allgather(tree, tiled=True)
    return jax.tree.map(lambda x: jnp.asarray(np.asarray(x)), jax.device_get(tree))


class _Run:
    """State and bookkeeping of one call of :func:`train`."""

    def __init__(self, model, train_examples, val_examples, config, data_config, run_dir):
        self.config, self.stage = config, config.stage
        self.mesh = make_mesh(config.mesh)
        self.parts, frozen, trainable = split_model(model)
        self.train_examples = train_examples
        max_len = max_positions(model.config)
        self.batcher = make_batcher(
            train_examples, data_config, config.tokens_per_batch, batch_width(self.mesh),
            config.seed, max_len, fill_with_repeats=True,
        )
        self.optimizer, schedule = make_optimizer(config.optimizer, config.steps)
        self.schedule = jax.jit(schedule)
        opt_abstract = jax.eval_shape(self.optimizer.init, trainable)
        self.shardings = (
            state_shardings(frozen, self.mesh),
            state_shardings(trainable, self.mesh),
            state_shardings(opt_abstract, self.mesh),
        )
        self.frozen = jax.device_put(frozen, self.shardings[0])
        self.trainable = jax.device_put(trainable, self.shardings[1])
        self.steps = make_train_steps(
            self.parts, self.stage, model.config.vocab, self.optimizer, self.mesh,
            self.shardings[:2], self.shardings[2], dropout=float(model.config.dropout) > 0,
        )
        self.evaluator = Evaluator(
            self.parts, self.stage, val_examples, self.mesh, self.shardings[:2],
            config.tokens_per_batch, data_config, config.eval_batches, max_len,
        )
        self.checkpoints = TrainCheckpoints(run_dir, config.keep_checkpoints)
        self.model_config = model.config.to_dict()
        self.history: dict[str, list] = {"train": [], "eval": [], "epochs": []}
        self.step, self.position, self.resumed_from = 0, DataPosition(), None
        self._restore_or_init(opt_abstract)
        self.base_key = jax.random.key(config.seed)
        self.rates: list[float] = []
        self.last_done = 0.0

    def _restore_or_init(self, opt_abstract) -> None:
        if self.checkpoints.latest_step() is None:
            init = jax.jit(self.optimizer.init, out_shardings=self.shardings[2])
            self.opt_state = init(self.trainable)
            return
        restored = self.checkpoints.restore(
            self.frozen, self.trainable, opt_abstract, self.shardings
        )
        if restored.meta.get("stage") != self.stage:
            raise ValueError(
                f"{self.checkpoints.run_dir} holds a {restored.meta.get('stage')} run, not "
                f"{self.stage}; use another run directory"
            )
        if restored.meta.get("model_config") != self.model_config:
            raise ValueError(
                f"{self.checkpoints.run_dir} was trained with another model config; use "
                "another run directory or the same model"
            )
        self.frozen, self.trainable = restored.frozen, restored.trainable
        self.opt_state, self.position = restored.opt_state, restored.position
        self.step = self.resumed_from = restored.step
        self.history["eval"] = list(restored.meta.get("eval_history", []))
        self.history["epochs"] = list(restored.meta.get("epochs", []))
        log.info("resumed %s training from step %d (%s)", self.stage, self.step, self.position)

    # ------------------------------------------------------------------ steps

    def next_batch(self, batches) -> tuple[dict, int]:
        self.position, host = next(batches)
        host = dict(host)
        n_positions = int(host.pop("lengths").sum())
        return global_batch(host, self.mesh), n_positions

    def dispatch(self, batches) -> tuple[dict, int]:
        """Run one optimizer step asynchronously; returns its device metrics, positions."""
        key = jax.random.fold_in(self.base_key, self.step)
        accumulation = self.config.optimizer.accumulation_steps
        if accumulation == 1:
            batch, n_positions = self.next_batch(batches)
            self.trainable, self.opt_state, metrics = self.steps.train(
                self.frozen, self.trainable, self.opt_state, batch, key
            )
            return metrics, n_positions
        grads, stats = self.steps.zeros(self.trainable)
        n_positions = 0
        for micro in range(accumulation):
            batch, n = self.next_batch(batches)
            n_positions += n
            grads, stats = self.steps.accumulate(
                self.frozen, self.trainable, grads, stats, batch, jax.random.fold_in(key, micro)
            )
        self.trainable, self.opt_state, metrics = self.steps.apply(
            self.trainable, self.opt_state, grads, stats
        )
        return metrics, n_positions

    def finish(self, step: int, metrics, n_positions: int, started: float) -> dict[str, float]:
        """Fetch a dispatched step's metrics; stop the run if they are not finite."""
        values = {k: float(v) for k, v in jax.device_get(metrics).items()}
        done = time.perf_counter()
        elapsed, self.last_done = done - max(started, self.last_done), done
        if not (math.isfinite(values["loss"]) and math.isfinite(values["grad_norm"])):
            self.checkpoints.wait()
            last = self.checkpoints.latest_step()
            raise TrainingDiverged(
                f"{self.stage} training diverged at step {step}: loss={values['loss']}, "
                f"grad_norm={values['grad_norm']}; stopped. The last good checkpoint "
                f"({'none' if last is None else f'step {last}'}) stays in "
                f"{self.checkpoints.run_dir}"
            )
        rate = n_positions / elapsed if elapsed > 0 else 0.0
        self.rates.append(rate)
        row = {
            "loss": values["loss"],
            "learning_rate": float(self.schedule(step - 1)),
            "grad_norm": values["grad_norm"],
            "tokens_per_s": rate,
            "loss_tokens": values["n_tokens"],
            "epoch": float(self.position.epoch),
        }
        self.history["train"].append({"step": step, **row})
        return row

    def evaluate(self) -> dict[str, float]:
        metrics = self.evaluator(self.frozen, self.trainable)
        self.history["eval"].append({"step": self.step, **metrics})
        return metrics

    def save(self) -> None:
        meta = {
            "stage": self.stage,
            "train_config": self.config.to_dict(),
            "model_config": self.model_config,
            "eval_history": self.history["eval"],
            "epochs": self.history["epochs"],
        }
        self.checkpoints.save(
            self.step, self.frozen, self.trainable, self.opt_state, self.position, meta
        )

    def note_epoch(self) -> None:
        seen = {row["epoch"] for row in self.history["epochs"]}
        if self.position.epoch not in seen:
            fraction = self.batcher.padding_fraction(self.position.epoch)
            self.history["epochs"].append(
                {"epoch": self.position.epoch, "padding_fraction": fraction}
            )
            log.info("epoch %d: %.1f%% padded positions", self.position.epoch, 100 * fraction)


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

    ``run_dir`` receives Orbax checkpoints; if it holds some, training resumes from the
    newest. ``on_metrics(step, metrics)`` gets loss, learning_rate, grad_norm and
    tokens_per_s every ``log_every`` steps, ``on_eval(step, metrics)`` the validation
    loss, perplexity, top1 and top10; both on process 0 only. A non-finite loss or
    gradient norm raises :class:`TrainingDiverged` and keeps the last good checkpoint.
    """
    _check_inputs(model, train_examples, val_examples, config)
    run = _Run(model, train_examples, val_examples, config, data_config or StageDataConfig(),
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
            run.note_epoch()
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


def _report(run: _Run, pending, bar, on_metrics, primary: bool) -> None:
    step, metrics, n_positions, clock = pending
    row = run.finish(step, metrics, n_positions, clock)
    bar.update(step - bar.n)
    if step % run.config.log_every == 0:
        bar.set_postfix(loss=f"{row['loss']:.3f}", tok_s=f"{row['tokens_per_s']:,.0f}")
        if on_metrics and primary:
            on_metrics(step, row)


def _result(run: _Run, started_at: float) -> TrainResult:
    frozen, trainable = _host_copy(run.frozen), _host_copy(run.trainable)
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
