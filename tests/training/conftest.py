"""Training tests share one persistent XLA compilation cache (subprocesses too), so the
same train step compiles once per session instead of once per test."""

from __future__ import annotations

import os

import jax
import pytest
from jax.experimental.compilation_cache import compilation_cache


@pytest.fixture(scope="session", autouse=True)
def shared_compilation_cache(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("jax_compilation_cache"))
    previous = os.environ.get("JAX_COMPILATION_CACHE_DIR")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = path
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    compilation_cache.set_cache_dir(path)
    compilation_cache.reset_cache()
    yield path
    if previous is None:
        os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)
    else:
        os.environ["JAX_COMPILATION_CACHE_DIR"] = previous
