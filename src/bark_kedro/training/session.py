"""One call of :func:`bark_kedro.training.train`: the state it carries between steps.

Parameters, optimizer state and data position, the compiled steps, the evaluator and
the checkpoints of the run; dispatching a step, reading its metrics back, saving.
"""

from __future__ import annotations

import logging
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from bark_kedro.training.batching import DataPosition
from bark_kedro.training.checkpoints import TrainCheckpoints
from bark_kedro.training.data import make_batcher, max_positions
from bark_kedro.training.evaluate import Evaluator
from bark_kedro.training.mesh import batch_width, global_batch, make_mesh, state_shardings
from bark_kedro.training.optimizer import make_optimizer
from bark_kedro.training.state import split_model
from bark_kedro.training.steps import make_train_steps

log = logging.getLogger(__name__)


class TrainingDiverged(FloatingPointError):
    """The training loss or gradient norm stopped being finite."""


def host_copy(tree):
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        tree = multihost_utils.process_allgather(tree, tiled=True)
    return jax.tree.map(lambda x: jnp.asarray(np.asarray(x)), jax.device_get(tree))


class TrainSession:
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
            "padding_fraction": self.padding_of_epoch(self.position.epoch),
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

    def padding_of_epoch(self, epoch: int) -> float:
        """Fraction of padded batch positions in ``epoch`` (recorded in the history once)."""
        for row in self.history["epochs"]:
            if row["epoch"] == epoch:
                return row["padding_fraction"]
        fraction = self.batcher.padding_fraction(epoch)
        self.history["epochs"].append({"epoch": epoch, "padding_fraction": fraction})
        log.info("%s epoch %d: %.1f%% padded positions", self.stage, epoch, 100 * fraction)
        return fraction
