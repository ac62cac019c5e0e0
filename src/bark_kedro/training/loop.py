"""The training loop: batches -> jitted steps -> metrics, evaluations and checkpoints.

Deterministic: the data order comes from ``(seed, epoch)``, the dropout key of step
``s`` from ``fold_in(key(seed), s)``, so a run resumed from a checkpoint continues
bit for bit as if it had never stopped. The pure steps of :mod:`bark_kedro.training.step`
are compiled here, once per run, with the shardings of the mesh and buffer donation.
"""

from __future__ import annotations

import itertools
import logging
import math
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh
from tqdm.auto import tqdm

from bark_kedro.models.lora import LoRAConfig, base_digest, has_adapters, merge_adapters
from bark_kedro.training import step as steps
from bark_kedro.training.batching import DataPosition
from bark_kedro.training.checkpoints import TrainCheckpoints
from bark_kedro.training.config import MeshConfig, StageDataConfig, TrainConfig
from bark_kedro.training.examples import make_batcher, max_positions
from bark_kedro.training.layouts import Example
from bark_kedro.training.mesh import (
    batch_sharding,
    batch_width,
    device_facts,
    global_batch,
    is_primary,
    make_mesh,
    replicated,
    state_shardings,
)
from bark_kedro.training.model_init import check_stage_model, count_params
from bark_kedro.training.state import ModelDef, TrainState, make_optimizer, merge_model, split_model
from bark_kedro.training.streaming import StreamedBatches

__all__ = ["MetricsCallback", "TrainResult", "TrainingDiverged", "evaluate_examples", "train"]
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


# ----------------------------------------------------------------------------- compiling


@dataclass(frozen=True)
class CompiledSteps:
    """The steps of :mod:`~bark_kedro.training.step`, jitted for one model, stage and mesh."""

    train: Callable  # (state, batch, key) -> (state, metrics)
    accumulate: Callable  # (state, grads_sum, stats_sum, batch, key) -> (grads_sum, stats_sum)
    apply: Callable  # (state, grads_sum, stats_sum) -> (state, metrics)
    zeros: Callable  # (state) -> (zero grads, zero stats)
    eval: Callable  # (state, batch) -> stats sums


def compile_steps(
    model_def: ModelDef,
    stage: str,
    mesh: Mesh,
    shardings: TrainState,
    optimizer: optax.GradientTransformation | None = None,
) -> CompiledSteps:
    """The jitted steps: the state keeps ``shardings``, batches are split by rows, metrics
    replicated; the state's (and gradient sums') buffers are donated."""
    rep, rows = replicated(mesh), batch_sharding(mesh)
    stat_sh = {k: rep for k in steps.STAT_KEYS}
    metric_sh = {k: rep for k in steps.METRIC_KEYS}
    model = dict(model_def=model_def, stage=stage, mesh=mesh)
    grads_sh = shardings.trainable
    return CompiledSteps(
        train=jax.jit(
            partial(steps.train_step, **model, optimizer=optimizer),
            in_shardings=(shardings, rows, rep),
            out_shardings=(shardings, metric_sh),
            donate_argnums=0,
        ),
        accumulate=jax.jit(
            partial(steps.accumulate_gradients, **model),
            in_shardings=(shardings, grads_sh, stat_sh, rows, rep),
            out_shardings=(grads_sh, stat_sh),
            donate_argnums=(1, 2),
        ),
        apply=jax.jit(
            partial(steps.apply_accumulated, optimizer=optimizer),
            in_shardings=(shardings, grads_sh, stat_sh),
            out_shardings=(shardings, metric_sh),
            donate_argnums=0,
        ),
        zeros=jax.jit(steps.zero_gradients, in_shardings=(shardings,),
                      out_shardings=(grads_sh, stat_sh)),
        eval=jax.jit(partial(steps.eval_step, **model), in_shardings=(shardings, rows),
                     out_shardings=stat_sh),
    )


def place_state(state: TrainState, mesh: Mesh) -> tuple[TrainState, TrainState]:
    """``(state on the mesh, its shardings)``: parameters and optimizer state split along
    ``fsdp`` (:func:`~bark_kedro.training.mesh.state_shardings`), the step replicated."""
    shardings = state_shardings(state, mesh)
    return jax.device_put(state, shardings), shardings


def host_copy(tree):
    """``tree`` gathered from every process onto the default device."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        tree = multihost_utils.process_allgather(tree, tiled=True)
    return jax.tree.map(lambda x: jnp.asarray(np.asarray(x)), jax.device_get(tree))


# ----------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class EvalBatches:
    """Fixed validation batches (host arrays), reused at every evaluation: whole batches,
    or with ``local`` this process's rows of them (streamed input; a whole split of more
    than one chunk is read again, a chunk at a time, at every evaluation)."""

    batches: Iterable[dict[str, np.ndarray]]
    padding_fraction: float
    local: bool = False


@dataclass(frozen=True)
class StreamedSplit:
    """Every batch of a streamed split, re-read at each iteration (memory: one chunk)."""

    examples: StreamedBatches

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        for batch in self.examples.epoch_batches():
            _model_inputs(batch)
            yield batch


def _model_inputs(batch: dict[str, np.ndarray]) -> int:
    """Drop a streamed batch's bookkeeping (not an input of the eval step) in place; return
    its real positions (of the whole global batch)."""
    batch.pop("lengths")
    return int(batch.pop("n_positions"))


def eval_batches(
    examples: Sequence[Example] | StreamedBatches,
    data_config: StageDataConfig,
    tokens_per_batch: int,
    mesh: Mesh,
    max_batches: int = 0,
    max_length: int | None = None,
) -> EvalBatches:
    """The batches of ``examples``: ``max_batches`` > 0 keeps that many of a seeded shuffle
    (the same ones every time); 0 keeps every example. Streamed examples give their first
    batches (their own batch sizes and buckets; this process's rows); a whole streamed split
    of several chunks is not held but read again at every evaluation (its padding: the first
    chunk's)."""
    if isinstance(examples, StreamedBatches):
        if not max_batches and examples.n_chunks > 1:
            return EvalBatches(StreamedSplit(examples), examples.padding_fraction(0), local=True)
        batches = examples.first_batches(max_batches)
        real = sum(_model_inputs(b) for b in batches)
        total = sum(b["targets"].size for b in batches) * examples.process_count
        return EvalBatches(batches, 1.0 - real / total if total else 0.0, local=True)
    if not examples:
        raise ValueError("no validation examples to evaluate on")
    batcher = make_batcher(examples, data_config, tokens_per_batch, batch_width(mesh), seed=0,
                           max_length=max_length)
    n_batches = len(batcher.plan(0))
    if max_batches:
        n_batches = min(n_batches, max_batches)
    batches = []
    for _, batch in itertools.islice(batcher.iterate(examples), n_batches):
        batch = dict(batch)
        batch.pop("lengths")
        batches.append(batch)
    return EvalBatches(batches, batcher.padding_fraction(0))


def evaluate(eval_step: Callable, state: TrainState, data: EvalBatches, mesh: Mesh) -> dict:
    """loss, perplexity, top1, top10 (fractions) and n_tokens over the batches."""
    totals: dict[str, float] = {}
    for batch in data.batches:
        stats = eval_step(state, global_batch(batch, mesh, local=data.local))
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
    model_def, state = split_model(model)
    state, shardings = place_state(state, mesh)
    data = eval_batches(examples, data_config or StageDataConfig(), tokens_per_batch, mesh,
                        max_length=max_positions(model.config))
    compiled = compile_steps(model_def, stage, mesh, shardings)
    return evaluate(compiled.eval, state, data, mesh) | {
        "padding_fraction": float(data.padding_fraction)
    }


# ----------------------------------------------------------------------------- training


def _check_inputs(model, train_examples, val_examples, config: TrainConfig) -> None:
    check_stage_model(model, config.stage, model.config.vocab)
    for name, examples in (("train_examples", train_examples), ("val_examples", val_examples)):
        if isinstance(examples, StreamedBatches):
            continue  # laid out for this model; each batch is checked by collate
        if not examples:
            raise ValueError(f"{name} is empty: nothing to train or validate on")
        longest = max(e.length for e in examples)
        if longest > max_positions(model.config):
            raise ValueError(
                f"{name} hold an example of {longest} positions, more than the model's "
                f"{max_positions(model.config)} (block_size {model.config.block_size})"
            )
    if config.stage == "fine" and not isinstance(train_examples, StreamedBatches):
        lowest = min(int(e.codebook) for e in (*train_examples, *val_examples))
        if lowest < model.config.n_codes_given:
            raise ValueError(
                f"fine examples predict codebook {lowest}, the model's n_codes_given="
                f"{model.config.n_codes_given} starts at {model.config.n_codes_given}"
            )


def _restore(checkpoints, state, shardings, stage: str, model_config: dict,
             digest: str | None):
    """The checkpointed ``(state, position, meta)``, checked to belong to this run (and, for
    LoRA adapters, to this base model: ``digest``)."""
    stored = checkpoints.read_meta().get("base_digest")
    if stored != digest:
        raise ValueError(
            f"{checkpoints.run_dir} holds a run on base weights with digest {stored}, this "
            f"model's base has digest {digest}: LoRA adapters only resume on the base "
            "checkpoint they were trained on; load that base or use another run directory"
        )
    state, position, meta = checkpoints.restore(state, shardings)
    if meta.get("stage") != stage:
        raise ValueError(
            f"{checkpoints.run_dir} holds a {meta.get('stage')} run, not {stage}; use another "
            "run directory"
        )
    if meta.get("model_config") != model_config:
        raise ValueError(
            f"{checkpoints.run_dir} was trained with another model config; use another run "
            "directory or the same model"
        )
    log.info("resumed %s training from step %d (%s)", stage, meta["step"], position)
    return state, position, meta


def train(
    model,
    train_examples: Sequence[Example] | StreamedBatches,
    val_examples: Sequence[Example] | StreamedBatches,
    config: TrainConfig,
    data_config: StageDataConfig | None = None,
    run_dir: str | Path = "run",
    *,
    on_metrics: MetricsCallback | None = None,
    on_eval: MetricsCallback | None = None,
    lora: LoRAConfig | None = None,
) -> TrainResult:
    """Train ``model`` (see :func:`build_stage_model`) on ``config.stage`` examples (held in
    memory, or streamed: :class:`~bark_kedro.training.streaming.StreamedBatches`, whose
    own batch sizes and buckets are used).

    A model with LoRA adapters (``lora``: their config, recorded with the checkpoints)
    checkpoints only its trainable parameters and the digest of its base weights, resumes
    only on that base, and comes back merged (a plain model, its adapters folded in).

    ``run_dir`` (a local directory, or a bucket path such as ``gs://...`` that every host
    of a multi-host run sees) receives Orbax checkpoints; if it holds some, training
    resumes from the newest. ``on_metrics(step, metrics)`` gets loss, learning_rate,
    grad_norm and tokens_per_s every ``log_every`` steps, ``on_eval(step, metrics)`` the
    validation loss, perplexity, top1 and top10; both on process 0 only. A non-finite loss
    or gradient norm raises :class:`TrainingDiverged` and keeps the last good checkpoint.
    """
    _check_inputs(model, train_examples, val_examples, config)
    started_at = time.perf_counter()
    stage, data_config = config.stage, data_config or StageDataConfig()
    primary = is_primary()
    mesh = make_mesh(config.mesh)
    max_len = max_positions(model.config)
    streamed = isinstance(train_examples, StreamedBatches)
    batcher = train_examples if streamed else make_batcher(
        train_examples, data_config, config.tokens_per_batch, batch_width(mesh), config.seed,
        max_len, fill_with_repeats=True)
    val_data = eval_batches(val_examples, data_config, config.tokens_per_batch, mesh,
                            config.eval_batches, max_len)
    optimizer, schedule = make_optimizer(config.optimizer, config.steps)
    schedule = jax.jit(schedule)
    model_def, state = split_model(model)
    state = state.replace(opt_state=jax.eval_shape(optimizer.init, state.trainable))
    shardings = state_shardings(state, mesh)
    compiled = compile_steps(model_def, stage, mesh, shardings, optimizer)
    adapters = has_adapters(model)
    digest = base_digest(model) if adapters else None
    checkpoints = TrainCheckpoints(run_dir, config.keep_checkpoints, store_frozen=not adapters)
    model_config = model.config.to_dict()
    lora_meta = ({"base_digest": digest, "lora": lora.to_dict() if lora else None}
                 if adapters else {})
    history: dict[str, list] = {"train": [], "eval": [], "epochs": []}
    position, resumed_from = DataPosition(), None
    if checkpoints.latest_step() is None:
        init = jax.jit(optimizer.init, out_shardings=shardings.opt_state)
        params = jax.device_put(state.replace(opt_state=None),
                                shardings.replace(opt_state=None))
        state = params.replace(opt_state=init(params.trainable))
    else:
        state, position, meta = _restore(checkpoints, state, shardings, stage, model_config,
                                         digest)
        resumed_from = int(meta["step"])
        history["eval"] = list(meta.get("eval_history", []))
        history["epochs"] = list(meta.get("epochs", []))
    step = resumed_from or 0
    base_key = jax.random.key(config.seed)
    rates: list[float] = []
    last_done = 0.0

    def padding_of_epoch(epoch: int) -> float:
        for row in history["epochs"]:
            if row["epoch"] == epoch:
                return row["padding_fraction"]
        fraction = batcher.padding_fraction(epoch)
        history["epochs"].append({"epoch": epoch, "padding_fraction": fraction})
        log.info("%s epoch %d: %.1f%% padded positions", stage, epoch, 100 * fraction)
        return fraction

    def run_eval() -> None:
        metrics = evaluate(compiled.eval, state, val_data, mesh)
        history["eval"].append({"step": step, **metrics})
        if on_eval and primary:
            on_eval(step, metrics)

    def report(pending) -> None:
        """Fetch a dispatched step's metrics (stopping a diverged run), log them."""
        nonlocal last_done
        done_step, metrics, n_positions, clock = pending
        values = {k: float(v) for k, v in jax.device_get(metrics).items()}
        done = time.perf_counter()
        elapsed, last_done = done - max(clock, last_done), done
        if not (math.isfinite(values["loss"]) and math.isfinite(values["grad_norm"])):
            checkpoints.wait()
            last = checkpoints.latest_step()
            raise TrainingDiverged(
                f"{stage} training diverged at step {done_step}: loss={values['loss']}, "
                f"grad_norm={values['grad_norm']}; stopped. The last good checkpoint "
                f"({'none' if last is None else f'step {last}'}) stays in {checkpoints.run_dir}"
            )
        rate = n_positions / elapsed if elapsed > 0 else 0.0
        rates.append(rate)
        row = {
            "loss": values["loss"],
            "learning_rate": float(schedule(done_step - 1)),
            "grad_norm": values["grad_norm"],
            "tokens_per_s": rate,
            "loss_tokens": values["n_tokens"],
            "epoch": float(position.epoch),
            "padding_fraction": padding_of_epoch(position.epoch),
        }
        history["train"].append({"step": done_step, **row})
        bar.update(done_step - bar.n)
        if done_step % config.log_every == 0:
            bar.set_postfix(loss=f"{row['loss']:.3f}", tok_s=f"{row['tokens_per_s']:,.0f}")
            if on_metrics and primary:
                on_metrics(done_step, row)

    if step == 0 and not history["eval"]:
        run_eval()
    bar = tqdm(total=config.steps, initial=step, disable=not (config.progress and primary),
               desc=f"train {stage}", unit="step")
    batches = batcher.iterate(position) if streamed else batcher.iterate(train_examples, position)
    pending = None
    try:
        while step < config.steps:
            clock = time.perf_counter()
            key = jax.random.fold_in(base_key, step)
            state, metrics, position, n_positions = _dispatch(
                compiled, state, batches, key, config.optimizer.accumulation_steps, mesh,
                streamed)
            step += 1
            if pending is not None:
                report(pending)
            pending = (step, metrics, n_positions, clock)
            if step == (resumed_from or 0) + 1:  # the first step reports when it is done,
                report(pending)  # before the next one's batch is read and its bucket compiled
                pending = None
            due_eval = step % config.eval_every == 0 or step == config.steps
            due_save = step % config.checkpoint_every == 0 or step == config.steps
            if due_eval or due_save:
                if pending is not None:
                    report(pending)
                pending = None
                if due_eval:
                    run_eval()
                if due_save:
                    meta = {"stage": stage, "train_config": config.to_dict(),
                            "model_config": model_config, "eval_history": history["eval"],
                            "epochs": history["epochs"], **lora_meta}
                    checkpoints.save(step, state, position, meta)
        if pending is not None:
            report(pending)
    finally:
        bar.close()
        checkpoints.wait()
        if streamed:
            batcher.close()
    checkpoints.close()
    trained = merge_model(model_def, host_copy(state.replace(opt_state=None)))
    params = count_params(trained)
    if adapters:
        trained = merge_adapters(trained)
    evals, train_rows = history["eval"], history["train"]
    summary = {
        "stage": stage,
        "steps": step,
        "resumed_from_step": resumed_from,
        "final_train_loss": train_rows[-1]["loss"] if train_rows else None,
        "padding_fraction": batcher.padding_fraction(0),
        "val_padding_fraction": val_data.padding_fraction,
        "tokens_per_s": statistics.median(rates[1:] or rates or [0.0]),
        "n_train_examples": None if streamed else len(train_examples),
        "n_train_records": batcher.n_records if streamed else None,
        "buckets": [int(b) for b in batcher.buckets],
        "elapsed_s": time.perf_counter() - started_at,
        "params": params,
        "device": device_facts(mesh),
        **lora_meta,
    }
    for name, row in (("initial", evals[0] if evals else {}), ("final", evals[-1] if evals else {})):
        for key in ("loss", "top1", "top10", "perplexity"):
            summary[f"{name}_val_{key}"] = row.get(key)
    return TrainResult(model=trained, summary=summary, history=history)


def _dispatch(
    compiled: CompiledSteps, state: TrainState, batches: Iterator, key: jax.Array,
    accumulation: int, mesh: Mesh, local: bool = False,
) -> tuple[TrainState, dict, DataPosition, int]:
    """One optimizer step, dispatched asynchronously: ``(state, device metrics, data
    position, batch positions)``; ``accumulation`` micro-batches are summed host-side
    (buckets differ in shape), every token weighing the same. ``local``: the batches hold
    this process's rows (and ``n_positions``, the whole batch's)."""
    n_positions = 0

    def next_batch():
        nonlocal n_positions
        position, host = next(batches)
        host = dict(host)
        lengths = host.pop("lengths")
        n_positions += int(host.pop("n_positions", lengths.sum()))
        return position, global_batch(host, mesh, local=local)

    if accumulation == 1:
        position, batch = next_batch()
        state, metrics = compiled.train(state, batch, key)
        return state, metrics, position, n_positions
    grads, stats = compiled.zeros(state)
    for micro in range(accumulation):
        position, batch = next_batch()
        grads, stats = compiled.accumulate(state, grads, stats, batch,
                                           jax.random.fold_in(key, micro))
    state, metrics = compiled.apply(state, grads, stats)
    return state, metrics, position, n_positions
