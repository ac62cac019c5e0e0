"""The project's own model checkpoints: an Orbax directory with parameters and config.

Layout (``orbax.checkpoint`` composite checkpoint):

- ``params``: the Flax parameters (a nested dict of arrays, ``nnx.State.to_pure_dict``);
- ``config``: the model config as JSON (``ModelConfig.to_dict``);
- ``metadata``: optional JSON (step, dataset versions, ...);
- ``extra``: optional pytree of arrays (e.g. optimizer state), restored against a target.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from bark_kedro.models.config import ModelConfig, config_from_dict
from bark_kedro.models.convert import Model, abstract_model
from bark_kedro.models.fine_gpt import FineGPT
from bark_kedro.models.gpt import GPT


def _checkpointer() -> ocp.Checkpointer:
    """A checkpointer of this process alone (in a multi-host run only process 0 writes the
    model directory, so no other process takes part in its barriers)."""
    me = jax.process_index()
    options = ocp.options.MultiprocessingOptions(primary_host=me, active_processes={me})
    handler = ocp.CompositeCheckpointHandler(
        composite_options=ocp.CompositeOptions(multiprocessing_options=options))
    return ocp.Checkpointer(handler, multiprocessing_options=options)


def _host_arrays(tree: Any) -> Any:
    """Arrays as numpy: a process-local jax.Array of a multi-host run is not Orbax-savable."""
    return jax.tree.map(lambda x: np.asarray(x) if isinstance(x, jax.Array) else x, tree)


def _require_checkpoint(directory: Path) -> None:
    if not (directory / "config").is_dir() or not (directory / "params").is_dir():
        raise FileNotFoundError(
            f"{directory} is not a model checkpoint (expected 'params' and 'config' inside)"
        )


def save_model(
    directory: str | Path,
    model: Model,
    metadata: dict[str, Any] | None = None,
    extra: Any = None,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` (parameters + config) and optional metadata/extra pytree with Orbax."""
    if not isinstance(model, GPT | FineGPT):
        raise TypeError(f"expected a GPT or FineGPT, got {type(model).__name__}")
    directory = Path(directory).absolute()
    if directory.exists() and not overwrite:
        raise FileExistsError(f"{directory} exists; pass overwrite=True to replace it")
    items = {
        "params": ocp.args.StandardSave(_host_arrays(nnx.state(model, nnx.Param).to_pure_dict())),
        "config": ocp.args.JsonSave(model.config.to_dict()),
    }
    if metadata is not None:
        items["metadata"] = ocp.args.JsonSave(metadata)
    if extra is not None:
        items["extra"] = ocp.args.StandardSave(_host_arrays(extra))
    with _checkpointer() as ckpt:
        ckpt.save(directory, ocp.args.Composite(**items), force=overwrite)
    return directory


def load_config(directory: str | Path) -> ModelConfig:
    """The model config stored in a checkpoint directory."""
    directory = Path(directory).absolute()
    _require_checkpoint(directory)
    with _checkpointer() as ckpt:
        restored = ckpt.restore(directory, ocp.args.Composite(config=ocp.args.JsonRestore()))
    return config_from_dict(restored["config"])


def load_metadata(directory: str | Path) -> dict[str, Any]:
    """The metadata JSON of a checkpoint ({} when none was saved)."""
    directory = Path(directory).absolute()
    _require_checkpoint(directory)
    if not (directory / "metadata").is_dir():
        return {}
    with _checkpointer() as ckpt:
        restored = ckpt.restore(directory, ocp.args.Composite(metadata=ocp.args.JsonRestore()))
    return restored["metadata"]


def load_model(directory: str | Path, **overrides: Any) -> tuple[Model, ModelConfig]:
    """Rebuild the model saved by :func:`save_model`; ``overrides`` change config fields
    that do not change parameter shapes (e.g. ``dtype``, ``dropout``)."""
    directory = Path(directory).absolute()
    config = load_config(directory)
    if overrides:
        config = config.replace(**overrides)
    graphdef, abstract = nnx.split(abstract_model(config))
    target = abstract.to_pure_dict()
    _check_stored_params(directory, target)
    with _checkpointer() as ckpt:
        restored = ckpt.restore(
            directory, ocp.args.Composite(params=ocp.args.StandardRestore(target))
        )
    abstract.replace_by_pure_dict(restored["params"])
    return nnx.merge(graphdef, abstract), config


def _shapes(tree: Any) -> dict[str, tuple]:
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {".".join(str(k.key) for k in path): tuple(x.shape) for path, x in flat}


def _check_stored_params(directory: Path, target: Any) -> None:
    """Compare the stored parameter names/shapes with the config's (before restoring)."""
    stored = _shapes(ocp.StandardCheckpointHandler().metadata(directory / "params"))
    wanted = _shapes(target)
    for name in sorted(set(wanted) | set(stored)):
        if name not in stored:
            raise ValueError(f"{directory}: parameter {name!r} is missing from the checkpoint")
        if name not in wanted:
            raise ValueError(f"{directory}: parameter {name!r} is not in the model of the config")
        if stored[name] != wanted[name]:
            raise ValueError(
                f"{directory}: parameter {name!r} has shape {stored[name]}, the config expects "
                f"{wanted[name]}"
            )


def load_extra(directory: str | Path, target: Any) -> Any:
    """Restore the ``extra`` pytree (e.g. optimizer state) against an abstract ``target``."""
    directory = Path(directory).absolute()
    _require_checkpoint(directory)
    if not (directory / "extra").is_dir():
        raise FileNotFoundError(f"{directory} holds no 'extra' item")
    with _checkpointer() as ckpt:
        restored = ckpt.restore(
            directory, ocp.args.Composite(extra=ocp.args.StandardRestore(target))
        )
    return restored["extra"]
