"""Runs: an experiment config plus a seed, cached on disk under a hash of the config."""

from ssmrl_lib.runs.executor import (
    Executor,
    LocalExecutor,
    RunSpec,
    default_executor,
    executor_environment,
    make_executor,
)
from ssmrl_lib.runs.store import (
    RunDir,
    RunStore,
    config_from_dict,
    config_hash,
    finite_or_none,
    horizon_of,
    wall_time_fields,
)

__all__ = [
    "Executor", "LocalExecutor", "RunDir", "RunSpec", "RunStore", "config_from_dict",
    "config_hash", "default_executor", "executor_environment", "finite_or_none", "horizon_of",
    "make_executor", "wall_time_fields",
]
