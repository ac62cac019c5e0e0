"""One process of a multi-process probe: ``python -m tests.training.distributed_probe``.

Started with ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``
set; each process fills its own rows of a global array (one row per device, split over
the training mesh) with ``process_index + 1`` and prints, as JSON, the device facts and
the global sum computed by one jitted reduction over every process's rows.
"""

from __future__ import annotations

import json

from bark_kedro.training.mesh import maybe_initialize_distributed


def main() -> None:
    assert maybe_initialize_distributed()
    import jax
    import jax.numpy as jnp
    import numpy as np

    from bark_kedro.training.mesh import batch_sharding, device_facts, make_mesh, replicated

    mesh = make_mesh()
    mine = np.full((jax.device_count(), 3), jax.process_index() + 1.0, np.float32)
    values = jax.make_array_from_callback(mine.shape, batch_sharding(mesh),
                                          lambda index: mine[index])
    total = jax.jit(jnp.sum, out_shardings=replicated(mesh))(values)
    print(json.dumps({**device_facts(mesh), "sum": float(total),
                      "cpu_collectives": jax.config.jax_cpu_collectives_implementation}),
          flush=True)
    jax.distributed.shutdown()


if __name__ == "__main__":
    main()
