"""Project settings (https://docs.kedro.org/en/stable/configure/configuration_basics/)."""

import logging
import os
import re
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

# Kedro calls OmegaConf's deprecated `register_new_resolver` once per config load; the notice
# is Kedro's to act on, not the project's.
warnings.filterwarnings("ignore", message=r"register_new_resolver\(\) is deprecated")
# kedro-mlflow's own pipeline model has an untyped `predict`; MLflow warns when it is imported.
warnings.filterwarnings("ignore", message=r".*Add type hints to the `predict` method")

from bark_kedro.hooks import MlflowRunHook, MultiHostHooks, RunTrackingHooks  # noqa: E402
from bark_kedro.integrity_hooks import RunIntegrityHooks  # noqa: E402
from bark_kedro.timing_hooks import NodeTimingHooks  # noqa: E402

# Called last to first: kedro-mlflow's run (MlflowRunHook) starts before the project's records.
HOOKS = (MultiHostHooks(), RunTrackingHooks(), RunIntegrityHooks(), MlflowRunHook(),
         NodeTimingHooks())

# Environment variables that give a process's rank on a multi-host run.
_RANK_VARIABLES = ("JAX_PROCESS_ID", "TPU_WORKER_ID", "CLOUD_TPU_TASK_ID", "SLURM_PROCID",
                   "OMPI_COMM_WORLD_RANK")


def _process_rank() -> int:
    for name in _RANK_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0


def _tracking_store(default: str) -> str:
    """The project's MLflow store on process 0; a throwaway local one on the other hosts."""
    rank = _process_rank()
    if rank == 0:
        return default
    return f"sqlite:///{tempfile.gettempdir()}/bark_kedro_mlflow_process_{rank}.db"


# kedro-telemetry is installed by kedro-viz; the project's `.telemetry` file says no.
# kedro-mlflow's hook is registered above as `MlflowRunHook` (the project's records).
DISABLE_HOOKS_FOR_PLUGINS = ("kedro-telemetry", "kedro_mlflow")
# kedro-mlflow sets its logger to INFO when imported; its level comes from conf/logging.yml.
logging.getLogger("kedro_mlflow").setLevel(logging.NOTSET)
# MLflow logs its store's table creation and migrations at INFO on its own handler.
logging.getLogger("mlflow").setLevel(logging.WARNING)


_PYDANTIC_DETAIL = re.compile(r" \[type=.*")


def short_parameter_error(message: str) -> str:
    """Kedro's parameter validation message (pydantic's report per parameter) on one line:
    ``Parameter validation failed: ingest.processing.min_duraton_s: Unexpected keyword ...``."""
    problems, key, field = [], "", None
    for line in message.splitlines()[1:]:
        head = re.match(r"- Parameter '([^']+)': (.*)", line)
        if head:
            key, rest = head.groups()
            if "validation error" not in rest:
                problems.append(f"{key}: {rest}")
        elif line.startswith(" ") and field is not None:
            problems.append(f"{key}.{field}: {_PYDANTIC_DETAIL.sub('', line.strip())}")
            field = None
        elif line.strip() and not line.startswith(" "):
            field = line.strip()
    return "Parameter validation failed: " + ("; ".join(problems) or " ".join(message.split()))


def _short_parameter_errors(previous: Any) -> Any:
    """An excepthook printing a parameter validation error as one line, not a traceback
    (the parameters are checked before any node runs; the line names the key)."""

    def excepthook(kind: type[BaseException], error: BaseException, traceback: Any) -> None:
        if kind.__name__ == "ParameterValidationError":
            sys.stderr.write(f"{short_parameter_error(str(error))}\n")
            return
        previous(kind, error, traceback)

    return excepthook


sys.excepthook = _short_parameter_errors(sys.excepthook)

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # `${cwd:}` in conf: Kedro runs from the project root, and absolute store URIs keep
    # MLflow from reusing one SQLite connection for two projects in one process (tests).
    "custom_resolvers": {"cwd": lambda: Path.cwd().as_posix(), "tracking_store": _tracking_store},
}
