"""Orbax training checkpoints: parameters, optimizer state, step, data position, configs.

One ``orbax.checkpoint.CheckpointManager`` directory per run (``run_dir``); each step
directory holds a :class:`~bark_kedro.training.state.TrainState` (``params``: frozen +
trainable flat dicts, the trainable ones only in a LoRA run, ``opt_state``) and what travels beside it, ``meta`` (JSON: step,
data position, train/model configs, history). Orbax writes to a temporary name and
renames when complete, so a killed run leaves only whole checkpoints; process
0 writes the JSON, every process its shards of the arrays.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from etils import epath

from bark_kedro.training.batching import DataPosition
from bark_kedro.training.state import TrainState


def _abstract(tree: Any, shardings: Any) -> Any:
    return jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings
    )


class TrainCheckpoints:
    """Save and restore the training state of one run directory."""

    def __init__(self, run_dir: str | Path, keep: int = 2, store_frozen: bool = True):
        # store_frozen=False (LoRA runs): only the trainable parameters are written; the
        # frozen base comes back from the state given to restore (the run checks its digest)
        self.store_frozen = store_frozen
        # a bucket URL (gs://..., shared by the hosts of a pod) or a local directory
        remote = "://" in str(run_dir)
        self.run_dir = epath.Path(str(run_dir)) if remote else Path(run_dir).absolute()
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
        self.manager = ocp.CheckpointManager(self.run_dir, options=options)

    def latest_step(self) -> int | None:
        """The step of the newest complete checkpoint (``None`` when there is none)."""
        return self.manager.latest_step()

    def save(
        self, step: int, state: TrainState, position: DataPosition, meta: dict[str, Any]
    ) -> None:
        """Write ``state`` (after ``step`` updates: ``state.step`` as a host int, which needs
        no device read) and the data position beside it (asynchronously)."""
        meta = dict(meta, step=step, position=[position.epoch, position.index, position.chunk])
        params = {"trainable": state.trainable}
        if self.store_frozen:
            params["frozen"] = state.frozen
        args = ocp.args.Composite(
            params=ocp.args.StandardSave(params),
            opt_state=ocp.args.StandardSave(state.opt_state),
            meta=ocp.args.JsonSave(meta),
        )
        self.manager.save(step, args=args, force=True)

    def restore(
        self, state: TrainState, shardings: TrainState
    ) -> tuple[TrainState, DataPosition, dict[str, Any]]:
        """The newest checkpoint's ``(state, data position, metadata)``, laid out like the
        given (abstract) ``state`` and its ``shardings``."""
        step = self.latest_step()
        if step is None:
            raise FileNotFoundError(f"{self.run_dir} holds no complete checkpoint")
        params = {"trainable": _abstract(state.trainable, shardings.trainable)}
        if self.store_frozen:
            params["frozen"] = _abstract(state.frozen, shardings.frozen)
        args = ocp.args.Composite(
            params=ocp.args.StandardRestore(params),
            opt_state=ocp.args.StandardRestore(_abstract(state.opt_state, shardings.opt_state)),
            meta=ocp.args.JsonRestore(),
        )
        restored = self.manager.restore(step, args=args)
        meta = restored["meta"]
        step_array = jax.device_put(jnp.asarray(int(meta["step"]), jnp.int32), shardings.step)
        frozen = (restored["params"]["frozen"] if self.store_frozen
                  else jax.device_put(state.frozen, shardings.frozen))
        state = TrainState(step_array, restored["params"]["trainable"], frozen,
                           restored["opt_state"])
        return state, DataPosition(*meta["position"]), meta

    def read_meta(self, step: int | None = None) -> dict[str, Any]:
        """The JSON metadata of a checkpoint (default: the newest)."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"{self.run_dir} holds no complete checkpoint")
        args = ocp.args.Composite(meta=ocp.args.JsonRestore())
        return self.manager.restore(step, args=args)["meta"]

    def read_params(self, step: int | None = None) -> dict[str, dict[str, Any]]:
        """``{"frozen": ..., "trainable": ...}`` parameters of a checkpoint as stored."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"{self.run_dir} holds no complete checkpoint")
        args = ocp.args.Composite(params=ocp.args.StandardRestore())
        return self.manager.restore(step, args=args)["params"]

    def wait(self) -> None:
        """Block until pending asynchronous writes are complete."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        """Finish pending writes and release the manager."""
        self.manager.close()
