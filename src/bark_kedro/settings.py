"""Project settings (https://docs.kedro.org/en/stable/configure/configuration_basics/)."""

from pathlib import Path

from bark_kedro.hooks import RunTrackingHooks

HOOKS = (RunTrackingHooks(),)

# kedro-telemetry is installed by kedro-viz; the project's `.telemetry` file says no.
DISABLE_HOOKS_FOR_PLUGINS = ("kedro-telemetry",)

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # `${cwd:}` in conf: Kedro runs from the project root, and absolute store URIs keep
    # MLflow from reusing one SQLite connection for two projects in one process (tests).
    "custom_resolvers": {"cwd": lambda: Path.cwd().as_posix()},
}
