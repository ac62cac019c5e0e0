"""Where a ``kedro run``'s time goes: wall and CPU seconds of every node, logged when it ends.

CPU seconds (``time.process_time``: every thread of the process) measure the work itself, so
they stay comparable on a machine other jobs load, where wall time stretches.
``benchmarks/kedro_run_time.py`` reads these lines back into a table.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kedro.framework.hooks import hook_impl

logger = logging.getLogger(__name__)

TIMING_PREFIX = "node time"


class NodeTimingHooks:
    """Logs ``node time <name>: <wall> s wall, <cpu> s CPU`` after each node, and the run's."""

    def __init__(self) -> None:
        self._started: dict[str, tuple[float, float]] = {}
        self._run: tuple[float, float] | None = None

    @staticmethod
    def _now() -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    @hook_impl
    def before_pipeline_run(self) -> None:
        self._run = self._now()

    @hook_impl
    def before_node_run(self, node: Any) -> None:
        self._started[node.name] = self._now()

    @hook_impl
    def after_node_run(self, node: Any) -> None:
        start = self._started.pop(node.name, None)
        if start is not None:
            self._log(node.name, start)

    @hook_impl
    def after_pipeline_run(self) -> None:
        if self._run is not None:
            self._log("(whole run)", self._run)

    def _log(self, name: str, start: tuple[float, float]) -> None:
        wall, cpu = (now - then for now, then in zip(self._now(), start, strict=True))
        logger.info("%s %s: %.1f s wall, %.1f s CPU", TIMING_PREFIX, name, wall, cpu)
