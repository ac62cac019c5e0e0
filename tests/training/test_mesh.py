"""Sharding rules, device facts and the multi-host start-up decision."""

from __future__ import annotations

import jax
import pytest
from jax.sharding import PartitionSpec

from bark_kedro.training import MeshConfig, device_facts, is_primary, make_mesh
from bark_kedro.training import mesh as mesh_module
from bark_kedro.training.mesh import param_spec


def test_fsdp_splits_the_largest_divisible_dimension():
    assert param_spec((768, 2304), 4) == PartitionSpec(None, "fsdp")
    assert param_spec((2304, 768), 4) == PartitionSpec("fsdp")
    assert param_spec((1056, 6), 4) == PartitionSpec("fsdp")
    assert param_spec((10, 6), 4) == PartitionSpec()  # nothing divisible: replicated
    assert param_spec((8, 7, 8), 4) == PartitionSpec("fsdp")  # ties: the first
    assert param_spec((768,), 1) == PartitionSpec()
    assert param_spec((), 2) == PartitionSpec()


def test_one_device_mesh_and_facts():
    mesh = make_mesh(MeshConfig())
    assert dict(mesh.shape) == {"data": jax.device_count(), "fsdp": 1}
    facts = device_facts(mesh)
    assert facts["platform"] == jax.devices()[0].platform
    assert facts["device_count"] == str(jax.device_count())
    assert facts["mesh_shape"] == f"data={jax.device_count()},fsdp=1"
    assert {"device_kind", "process_count", "process_index"} <= facts.keys()
    assert is_primary()
    too_many = jax.device_count() + 1
    with pytest.raises(ValueError, match=f"needs {too_many} devices"):
        make_mesh(MeshConfig(data=too_many))


@pytest.mark.parametrize(("env", "expected"), [
    ({}, False),
    ({"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "JAX_NUM_PROCESSES": "2",
      "JAX_PROCESS_ID": "0"}, True),
    ({"TPU_WORKER_HOSTNAMES": "host0"}, False),  # one host: nothing to coordinate
    ({"TPU_WORKER_HOSTNAMES": "host0,host1,host2,host3"}, True),
    ({"BARK_KEDRO_DISTRIBUTED": "1"}, True),
])
def test_distributed_start_only_when_the_environment_asks(monkeypatch, env, expected):
    calls = []
    monkeypatch.setattr(jax.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(jax.distributed, "initialize", lambda *a, **k: calls.append((a, k)))
    monkeypatch.setattr(mesh_module.jax, "process_count", lambda: 1)
    assert mesh_module.maybe_initialize_distributed(env) is expected
    assert len(calls) == int(expected)
