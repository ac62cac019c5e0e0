"""Orbax training checkpoints: parameters, optimizer state, step, data position, configs.

One ``orbax.checkpoint.CheckpointManager`` directory per run (``run_dir``); each step
directory holds ``params`` (frozen + trainable, flat dicts), ``opt_state`` and ``meta``
(JSON: step, data position, train/model configs, history). Orbax writes to a temporary
name and renames when complete, so a killed run leaves only whole checkpoints; process
0 writes the JSON, every process its shards of the arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath

from bark_kedro.training.batching import DataPosition


@dataclass(frozen=True)
class Restored:
    """A restored training state."""

    step: int
    frozen: dict[str, jax.Array]
    trainable: dict[str, jax.Array]
    opt_state: Any
    position: DataPosition
    meta: dict[str, Any]


def _abstract(tree: Any, shardings: Any) -> Any:
    return jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings
    )


class TrainCheckpoints:
    """Save and restore the training state of one run directory."""

    def __init__(self, run_dir: str | Path, keep: int = 2):
        # a bucket URL (gs://..., shared by the hosts of a pod) or a local directory
        remote = "://" in str(run_dir)
        self.run_dir = epath.Path(str(run_dir)) if remote else Path(run_dir).absolute()
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
        self.manager = ocp.CheckpointManager(self.run_dir, options=options)

    def latest_step(self) -> int | None:
        """The step of the newest complete checkpoint (``None`` when there is none)."""
        return self.manager.latest_step()

    def save(
        self,
        step: int,
        frozen: dict,
        trainable: dict,
        opt_state: Any,
        position: DataPosition,
        meta: dict[str, Any],
    ) -> None:
        """Write the state after ``step`` optimizer updates (asynchronously)."""
        meta = dict(meta, step=step, position=[position.epoch, position.index])
        args = ocp.args.Composite(
            params=ocp.args.StandardSave({"frozen": frozen, "trainable": trainable}),
            opt_state=ocp.args.StandardSave(opt_state),
            meta=ocp.args.JsonSave(meta),
        )
        self.manager.save(step, args=args, force=True)

    def restore(
        self, frozen: dict, trainable: dict, opt_state: Any, shardings: tuple[Any, Any, Any]
    ) -> Restored:
        """The newest checkpoint, laid out like the given (abstract) state and shardings."""
        step = self.latest_step()
        if step is None:
            raise FileNotFoundError(f"{self.run_dir} holds no complete checkpoint")
        frozen_sh, trainable_sh, opt_sh = shardings
        target = {"frozen": _abstract(frozen, frozen_sh), "trainable": _abstract(trainable, trainable_sh)}
        args = ocp.args.Composite(
            params=ocp.args.StandardRestore(target),
            opt_state=ocp.args.StandardRestore(_abstract(opt_state, opt_sh)),
            meta=ocp.args.JsonRestore(),
        )
        restored = self.manager.restore(step, args=args)
        meta = restored["meta"]
        return Restored(
            step=int(meta["step"]),
            frozen=restored["params"]["frozen"],
            trainable=restored["params"]["trainable"],
            opt_state=restored["opt_state"],
            position=DataPosition(*meta["position"]),
            meta=meta,
        )

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
