"""Execute the book's notebooks with papermill, checking every parameter first.

A notebook's parameters cell has a variable for each of its few main knobs (``profile``,
``envs``, ``models``, ``seeds``) and an ``overrides`` dict for any other setting, by its dotted
name (``{"ppo.learning_rate": 1e-4}``); ``execute`` puts every name that is not a variable
there. Papermill only warns about a parameter the notebook does not declare; here an unknown
name is an error naming the valid ones, and every value is resolved through the settings of the
experiment the notebook runs (``NOTEBOOK_SETTINGS``) before the kernel starts, so a bad value
fails in a second, in one line, with nothing recorded. The executed notebook replaces its
target only on success, so a failed run never leaves a half-executed chapter where the book
would render it. The kernel talks to papermill over local IPC sockets in a private directory
(not TCP), and is asked to shut down without the interrupt jupyter_client sends first (which
ipykernel reports as "KeyboardInterrupt caught in kernel").
"""

from __future__ import annotations

import ast
import importlib
import logging
import os
import signal
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import papermill
from jupyter_client.manager import AsyncKernelManager

from ssmrl_lib.errors import SsmrlError, check_choice
from ssmrl_lib.paths import REPO_ROOT, environment
from ssmrl_lib.profiles import PROFILE_NAMES, setting_values
from ssmrl_lib.runs.store import file_mode

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
# A kernel stopped by Ctrl-C leaves its worker pool's semaphores to its resource tracker, which
# unlinks them and warns that it did; the user asked for the stop, so the warning is only noise.
KERNEL_ENVIRONMENT = {
    "PYTHONWARNINGS": ",".join(
        filter(None, [os.environ.get("PYTHONWARNINGS"), "ignore:resource_tracker:UserWarning"])
    )
}
BOOK_DIR = REPO_ROOT / "book"

# Where each notebook's parameters go: (module with ``settings_for(profile, **overrides)`` and
# ``PROFILES``, the prefix of its parameters). A variable of the parameters cell goes to the
# module whose prefix it starts with (``dmc_seeds``: prefix ``dmc``), an entry of the cell's
# ``overrides`` dict likewise (``dmc.ppo.learning_rate``), stripped of it; ``profile`` to each.
NOTEBOOK_SETTINGS: dict[str, tuple[tuple[str, str], ...]] = {
    "00_datasets": (("ssmrl_lib.data.summary", ""),),
    "01_dt_replication": (("ssmrl_lib.experiments.offline_rl", ""),),
    "02_mamba_vs_dt": (("ssmrl_lib.experiments.offline_rl", ""),),
    "03_s5_popgym": (("ssmrl_lib.experiments.popgym_ppo", ""),),
    "04_bsuite_memory": (("ssmrl_lib.experiments.bsuite_memory", ""),),
    "05_meta_rl": (
        ("ssmrl_lib.experiments.meta_rl_cartpole", ""),
        ("ssmrl_lib.experiments.meta_rl_dmc", "dmc"),
    ),
    # The Claims page reads every experiment's runs at its one parameter, the profile.
    "06_claims": tuple((f"ssmrl_lib.experiments.{module}", "") for module in (
        "offline_rl", "popgym_ppo", "bsuite_memory", "meta_rl_cartpole", "meta_rl_dmc",
    )),
}
# The parameters cell's dict of settings by dotted name, for the settings it has no variable of.
OVERRIDES = "overrides"


def notebook_names() -> list[str]:
    return sorted(path.stem for path in NOTEBOOK_DIR.glob("*.ipynb"))


def notebook_parameters(name: str) -> list[str]:
    """The variables of notebook ``name``'s parameters cell."""
    check_choice("notebook", name, notebook_names())
    return list(papermill.inspect_notebook(str(NOTEBOOK_DIR / f"{name}.ipynb")))


def with_overrides(name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """``parameters`` as notebook ``name`` takes them: its parameters cell's variables as
    given, every other name (a setting, ``ppo.learning_rate``) in its ``overrides`` dict."""
    variables = notebook_parameters(name)
    if OVERRIDES not in variables:
        return dict(parameters)
    given = {k: v for k, v in parameters.items() if k in variables}
    overrides = {**(given.get(OVERRIDES) or {}),
                 **{k: v for k, v in parameters.items() if k not in variables}}
    return {**given, OVERRIDES: overrides} if overrides else given


def _split(key: str, prefixes: list[str], joiner: str) -> tuple[str, str]:
    """(prefix, name) of a parameter: the longest prefix it starts with (``dmc`` for
    ``dmc_seeds`` with joiner ``_``, ``dmc.ppo.unroll`` with ``.``; else ``""``), and the rest."""
    prefix = max((p for p in prefixes if not p or key.startswith(p + joiner)), key=len)
    return prefix, key.removeprefix(prefix + joiner) if prefix else key


def _targets(name: str) -> list[tuple[str, ModuleType]]:
    """(prefix, settings module) of each experiment notebook ``name`` runs."""
    return [(prefix, importlib.import_module(module))
            for module, prefix in NOTEBOOK_SETTINGS.get(name, ())]


def override_names(name: str, profile: str) -> list[str]:
    """What notebook ``name``'s ``overrides`` accept: every setting of its experiments (dotted,
    with the experiment's prefix) that its parameters cell has no variable of."""
    cell = notebook_parameters(name)
    if OVERRIDES not in cell:
        return []
    check_choice("profile", profile, PROFILE_NAMES)
    return list(dict.fromkeys(
        f"{prefix}.{setting}" if prefix else setting
        for prefix, module in _targets(name)
        for setting in setting_values(module.PROFILES[profile])
        if (f"{prefix}_{setting}" if prefix else setting) not in cell
    ))


def notebook_switches(name: str, profile: str) -> dict[str, Any]:
    """The variables of notebook ``name``'s parameters cell that are no setting of its
    experiments (the Claims page's ``campaign``), with their defaults: the notebook's own."""
    prefixes = sorted({prefix for prefix, _ in _targets(name)})
    settings_of = {prefix: set(setting_values(module.PROFILES[profile]))
                   for prefix, module in _targets(name)}
    cell = papermill.inspect_notebook(str(NOTEBOOK_DIR / f"{name}.ipynb"))
    switches = {}
    for key, variable in cell.items():
        prefix, setting = _split(key, prefixes, "_")
        if key not in ("profile", OVERRIDES) and setting not in settings_of.get(prefix, ()):
            switches[key] = ast.literal_eval(variable["default"])
    return switches


def check_parameters(name: str, parameters: dict[str, Any]) -> None:
    """Raise ``SsmrlError`` unless every parameter (as :func:`with_overrides` gives them) is
    one of the notebook's and its value is one that the settings of the notebook's
    experiment(s) accept."""
    variables = [v for v in notebook_parameters(name) if v != OVERRIDES]
    overrides = parameters.get(OVERRIDES) or {}
    if not isinstance(overrides, dict):
        raise SsmrlError(f"parameter {OVERRIDES!r} = {overrides!r}: must be a mapping of "
                         "settings to values, e.g. {ppo.learning_rate: 1e-4}")
    profile = parameters.get("profile", "quick")
    settable = override_names(name, profile)
    for key in [k for k in parameters if k != OVERRIDES] + list(overrides):
        check_choice(f"parameter of notebook {name}", key, variables + settable)
    if doubled := [key for key in overrides if key in variables]:
        raise SsmrlError(f"{doubled[0]!r} is a variable of notebook {name}'s parameters cell: "
                         f"set it as such, not in {OVERRIDES!r}")
    targets = _targets(name)
    prefixes = sorted({prefix for prefix, _ in targets})
    given: dict[str, dict[str, Any]] = {prefix: {} for prefix in prefixes}
    switches = notebook_switches(name, profile)
    for key, value in parameters.items():
        if key in switches:
            default = switches[key]
            if isinstance(default, bool) and not isinstance(value, bool):
                raise SsmrlError(f"parameter {key!r} = {value!r}: must be true or false")
        elif key not in ("profile", OVERRIDES):
            prefix, setting = _split(key, prefixes, "_")
            given[prefix][setting] = value
    for key, value in overrides.items():
        prefix, setting = _split(key, prefixes, ".")
        given[prefix][setting] = value
    for prefix, module in targets:
        module.settings_for(profile, **given[prefix])


def execute(name: str, parameters: dict[str, Any], output_dir: Path = BOOK_DIR) -> Path:
    """Run notebook ``name`` with ``parameters`` (its variables and settings by dotted name,
    see :func:`with_overrides`); return the executed notebook's path."""
    parameters = with_overrides(name, parameters)
    check_parameters(name, parameters)
    target = output_dir / f"{name}.ipynb"
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=output_dir, prefix=f".{name}.", suffix=".ipynb")
    except OSError as error:
        raise SsmrlError(
            f"cannot write the executed notebook to {output_dir}: {error.strerror}"
        ) from None
    os.fchmod(fd, file_mode())
    os.close(fd)
    try:
        with environment(KERNEL_ENVIRONMENT), _ctrl_c_stops_the_kernel_first():
            papermill.execute_notebook(
                str(NOTEBOOK_DIR / f"{name}.ipynb"), tmp, parameters=parameters,
                cwd=str(NOTEBOOK_DIR), progress_bar=False, kernel_name="python3",
                kernel_manager_class=_LocalKernelManager,
            )
    except papermill.PapermillExecutionError as error:
        Path(tmp).unlink(missing_ok=True)
        raise SsmrlError(
            f"notebook {name} failed: {error.ename}: {error.evalue.splitlines()[0]}"
        ) from None
    except BaseException:  # Ctrl-C included: papermill's event loop is gone, stop the kernel
        Path(tmp).unlink(missing_ok=True)
        for manager in list(_LocalKernelManager.live):
            manager.kill_now()
        raise
    os.replace(tmp, target)
    return target


@contextmanager
def _ctrl_c_stops_the_kernel_first() -> Iterator[None]:
    """On Ctrl-C, kill the kernel before papermill hears of it. Left to itself, papermill's
    client shuts a busy kernel down gracefully: it SIGTERMs the kernel's process group, the
    kernel's worker processes die first, and the cell's error and the client's abandoned tasks
    are printed after the user asked to stop. (Only the main thread can take signals.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        for manager in list(_LocalKernelManager.live):
            manager.kill_now()
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # the abandoned cell's task
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


class _LocalKernelManager(AsyncKernelManager):
    """A kernel on IPC sockets in a private temporary directory, shut down without the
    interrupt jupyter_client sends first (the kernel is idle by then)."""

    live: weakref.WeakSet[_LocalKernelManager] = weakref.WeakSet()
    GRACE_S = 5.0

    def __init__(self, **kwargs: Any):
        self._sockets = tempfile.TemporaryDirectory(prefix="ssmrl-kernel-")
        super().__init__(transport="ipc", ip=str(Path(self._sockets.name) / "kernel"), **kwargs)
        self.live.add(self)

    def kill_now(self) -> None:
        """Kill the kernel and then what it started (it runs in a session of its own), and
        remove its sockets, without the event loop a graceful shutdown needs. The kernel goes
        first so that its worker processes exit by themselves and its resource tracker can
        unlink their semaphores; what is left after ``GRACE_S`` is killed."""
        process = getattr(self.provisioner, "process", None)
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
            deadline = time.monotonic() + self.GRACE_S
            while _group_alive(process.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _group_alive(process.pid):
                os.killpg(process.pid, signal.SIGKILL)
        self._sockets.cleanup()

    async def _async_interrupt_kernel(self) -> None:
        if not self.shutting_down:
            await super()._async_interrupt_kernel()

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart:
            self._sockets.cleanup()
