import logging
import time

from kedro.framework.hooks.manager import _create_hook_manager
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import node, pipeline
from kedro.runner import SequentialRunner

from bark_kedro.settings import HOOKS
from bark_kedro.timing_hooks import NodeTimingHooks


def busy(x: int) -> int:
    end = time.process_time() + 0.2
    while time.process_time() < end:
        pass
    return x + 1


def test_every_node_logs_its_wall_and_cpu_seconds(caplog):
    assert any(isinstance(h, NodeTimingHooks) for h in HOOKS)
    manager = _create_hook_manager()
    hooks = NodeTimingHooks()
    manager.register(hooks)
    work = pipeline([node(busy, "a", "b", name="busy_node"), node(lambda b: b, "b", "c",
                                                                  name="idle_node")])
    with caplog.at_level(logging.INFO, logger="bark_kedro.timing_hooks"):
        hooks.before_pipeline_run()
        SequentialRunner().run(work, DataCatalog({"a": MemoryDataset(1)}), manager)
        hooks.after_pipeline_run()
    lines = {r.getMessage().split(":")[0]: r.getMessage() for r in caplog.records}
    assert set(lines) == {"node time busy_node", "node time idle_node", "node time (whole run)"}
    cpu = float(lines["node time busy_node"].split(", ")[1].split(" s")[0])
    assert 0.15 <= cpu < 5.0
