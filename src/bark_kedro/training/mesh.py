"""Devices: the ``(data, fsdp)`` mesh, the shardings declared on it, multi-host start-up.

Parameters and optimizer state: each array is split along ``fsdp`` on its largest
dimension that ``fsdp`` divides (replicated when none does). Batches: the leading
(batch) dimension is split over ``data`` and ``fsdp`` together, so every device
computes its own rows; XLA gathers the parameters where they are used (FSDP).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from bark_kedro.training.config import MeshConfig

log = logging.getLogger(__name__)

AXES = ("data", "fsdp")
BATCH_AXES = ("data", "fsdp")
_DISTRIBUTED_ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


def _wants_distributed(env: Mapping[str, str]) -> bool:
    if any(env.get(name) for name in _DISTRIBUTED_ENV):
        return True
    if env.get("BARK_KEDRO_DISTRIBUTED", "").lower() in ("1", "true", "yes"):
        return True
    hosts = [h for h in env.get("TPU_WORKER_HOSTNAMES", "").split(",") if h.strip()]
    return len(hosts) > 1  # a multi-host TPU slice (pod)


# variables through which a launcher (SLURM, Open MPI) tells JAX the processes on its own
_AUTO_DETECTED_ENV = ("SLURM_JOB_ID", "OMPI_COMM_WORLD_SIZE", "OMPI_MCA_orte_hnp_uri")


def distributed_arguments(env: Mapping[str, str]) -> dict[str, Any]:
    """``jax.distributed.initialize`` arguments from ``JAX_COORDINATOR_ADDRESS``,
    ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``; the ones not set are left to JAX's
    cluster detection (SLURM, Open MPI, TPU), which must then be present.
    """
    address, count, index = (env.get(name, "").strip() for name in _DISTRIBUTED_ENV)
    arguments: dict[str, Any] = {}
    if address:
        arguments["coordinator_address"] = address
    for name, key, value in (("JAX_NUM_PROCESSES", "num_processes", count),
                             ("JAX_PROCESS_ID", "process_id", index)):
        if not value:
            continue
        if not value.isdigit():
            raise ValueError(f"{name}={value!r} must be a non-negative integer")
        arguments[key] = int(value)
    if "num_processes" in arguments and "process_id" in arguments:
        if arguments["process_id"] >= arguments["num_processes"]:
            raise ValueError(f"JAX_PROCESS_ID={index} must be below JAX_NUM_PROCESSES={count}")
    auto_detected = any(env.get(name) for name in _AUTO_DETECTED_ENV)
    missing = [name for name, value in zip(_DISTRIBUTED_ENV, (address, count, index),
                                           strict=True) if not value]
    if arguments and missing and not auto_detected:
        raise ValueError(
            f"multi-process start: {', '.join(missing)} not set (set all of "
            f"{', '.join(_DISTRIBUTED_ENV)} on every process, or launch under SLURM / Open MPI)"
        )
    return arguments


def maybe_initialize_distributed(env: Mapping[str, str] | None = None) -> bool:
    """``jax.distributed.initialize`` when the environment describes several processes.

    Triggers: ``JAX_COORDINATOR_ADDRESS`` / ``JAX_NUM_PROCESSES`` / ``JAX_PROCESS_ID``
    (passed on as the coordinator address, process count and this process's index), a
    TPU pod (``TPU_WORKER_HOSTNAMES`` with several hosts) or ``BARK_KEDRO_DISTRIBUTED=1``
    (then JAX detects the cluster: SLURM, Open MPI, GKE, TPU). CPU collectives across
    processes use gloo (unless ``JAX_CPU_COLLECTIVES_IMPLEMENTATION`` says otherwise).
    Call it before anything else touches JAX. Returns whether the distributed runtime is
    (now) initialized.
    """
    env = os.environ if env is None else env
    if jax.distributed.is_initialized():
        return True
    if not _wants_distributed(env):
        return False
    arguments = distributed_arguments(env)
    if not env.get("JAX_CPU_COLLECTIVES_IMPLEMENTATION"):
        # only the CPU backend reads it: GPU and TPU collectives are unchanged
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(**arguments)
    log.info(
        "jax.distributed initialized: process %d of %d, %d local / %d global devices",
        jax.process_index(), jax.process_count(), jax.local_device_count(), jax.device_count(),
    )
    return True


def is_primary() -> bool:
    """Whether this is process 0 (the one that writes logs, metadata and reports)."""
    return jax.process_index() == 0


def make_mesh(config: MeshConfig | None = None) -> Mesh:
    """The ``("data", "fsdp")`` mesh of ``config`` over this run's devices.

    ``data * fsdp`` smaller than the device count uses the first devices (one process only).
    """
    config = config or MeshConfig()
    n_devices = jax.device_count()
    data, fsdp = config.shape(n_devices)
    types = (AxisType.Auto, AxisType.Auto)
    if data * fsdp == n_devices:
        return jax.make_mesh((data, fsdp), AXES, axis_types=types)
    if jax.process_count() > 1:
        raise ValueError(
            f"MeshConfig data={data} x fsdp={fsdp} must use all {n_devices} devices of a "
            "multi-process run"
        )
    devices = np.asarray(jax.devices()[: data * fsdp]).reshape(data, fsdp)
    return Mesh(devices, AXES, axis_types=types)


def batch_width(mesh: Mesh) -> int:
    """Devices a batch is split over (batch sizes must be a multiple of it)."""
    return int(np.prod([mesh.shape[a] for a in BATCH_AXES]))


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array."""
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) dimension split over ``data`` and ``fsdp``."""
    return NamedSharding(mesh, PartitionSpec(BATCH_AXES))


def param_spec(shape: tuple[int, ...], fsdp: int) -> PartitionSpec:
    """``fsdp`` on the largest dimension it divides (ties: the first), else replicated."""
    if fsdp == 1:
        return PartitionSpec()
    order = sorted(range(len(shape)), key=lambda d: (-shape[d], d))
    for dim in order:
        if shape[dim] % fsdp == 0:
            return PartitionSpec(*([None] * dim), "fsdp")
    return PartitionSpec()


def state_shardings(tree: Any, mesh: Mesh) -> Any:
    """A :class:`NamedSharding` per array of ``tree`` (parameters, optimizer state)."""
    fsdp = mesh.shape["fsdp"]
    return jax.tree.map(lambda x: NamedSharding(mesh, param_spec(tuple(x.shape), fsdp)), tree)


def device_facts(mesh: Mesh | None = None) -> dict[str, str]:
    """Platform, device kind and counts, process count and mesh shape, as strings."""
    device = jax.devices()[0]
    facts = {
        "platform": device.platform,
        "device_kind": device.device_kind,
        "device_count": str(jax.device_count()),
        "local_device_count": str(jax.local_device_count()),
        "process_count": str(jax.process_count()),
        "process_index": str(jax.process_index()),
        "jax_version": jax.__version__,
    }
    if mesh is not None:
        facts["mesh_shape"] = ",".join(f"{k}={v}" for k, v in mesh.shape.items())
    return facts


def process_rows(mesh: Mesh, n_rows: int) -> tuple[int, int]:
    """The ``[start, end)`` rows of a batch of ``n_rows`` that this process's devices hold
    (one contiguous block: the mesh orders its devices by process)."""
    index_map = batch_sharding(mesh).addressable_devices_indices_map((n_rows,))
    spans = sorted({(s[0].start or 0, n_rows if s[0].stop is None else s[0].stop)
                    for s in index_map.values()})
    start, end = spans[0][0], spans[-1][1]
    if sum(e - s for s, e in spans) != end - start:
        raise ValueError(f"this process's devices hold rows {spans} of a batch, not one "
                         "contiguous block; order the mesh's devices by process")
    return start, end


def global_batch(batch: Mapping[str, np.ndarray], mesh: Mesh,
                 local: bool = False) -> dict[str, jax.Array]:
    """Device arrays of a host batch, split by rows: the full batch (each process places
    its own rows of it), or with ``local`` only this process's rows
    (:func:`process_rows`) of the global batch."""
    sharding = batch_sharding(mesh)
    width = batch_width(mesh)
    out = {}
    for key, value in batch.items():
        n_rows = value.shape[0] * (jax.process_count() if local else 1)
        if n_rows % width:
            raise ValueError(
                f"batch of {n_rows} rows is not a multiple of the {width} devices it "
                "is split over"
            )
        start, end = process_rows(mesh, n_rows)
        if local and value.shape[0] != end - start:
            raise ValueError(f"{key}: {value.shape[0]} local rows, this process holds rows "
                             f"[{start}, {end}) of {n_rows}")
        rows = value if local else value[start:end]
        out[key] = jax.make_array_from_process_local_data(sharding, np.ascontiguousarray(rows),
                                                          (n_rows, *value.shape[1:]))
    return out
