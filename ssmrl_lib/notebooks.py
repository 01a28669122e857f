"""Execute the book's notebooks with papermill, checking every parameter first.

Papermill only warns about a parameter the notebook does not declare; here an unknown name is
an error naming the valid ones, and every value is resolved through the settings of the
experiment the notebook runs (``NOTEBOOK_SETTINGS``) before the kernel starts, so a bad value
fails in a second, in one line, with nothing recorded. The executed notebook replaces its
target only on success, so a failed run never leaves a half-executed chapter where the book
would render it. The kernel talks to papermill over local IPC sockets in a private directory
(not TCP), and is asked to shut down without the interrupt jupyter_client sends first (which
ipykernel reports as "KeyboardInterrupt caught in kernel").
"""

from __future__ import annotations

import importlib
import os
import signal
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any

import papermill
from jupyter_client.manager import AsyncKernelManager

from ssmrl_lib.errors import SsmrlError, check_choice
from ssmrl_lib.paths import REPO_ROOT, environment
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

# Where each notebook's parameters go: (module with ``settings_for(profile, **overrides)``,
# prefix of the parameters that belong to it). A parameter goes to the module whose prefix it
# starts with (the longest), stripped of it; ``profile`` goes to each.
NOTEBOOK_SETTINGS: dict[str, tuple[tuple[str, str], ...]] = {
    "00_datasets": (("ssmrl_lib.data.summary", ""),),
    "01_dt_replication": (("ssmrl_lib.experiments.offline_rl", ""),),
    "02_mamba_vs_dt": (("ssmrl_lib.experiments.offline_rl", ""),),
    "03_s5_popgym": (("ssmrl_lib.experiments.popgym_ppo", ""),),
    "04_bsuite_memory": (("ssmrl_lib.experiments.bsuite_memory", ""),),
    "05_meta_rl": (
        ("ssmrl_lib.experiments.meta_rl_cartpole", ""),
        ("ssmrl_lib.experiments.meta_rl_dmc", "dmc_"),
    ),
    # The Claims page reads every experiment's runs at its one parameter, the profile.
    "06_claims": tuple((f"ssmrl_lib.experiments.{module}", "") for module in (
        "offline_rl", "popgym_ppo", "bsuite_memory", "meta_rl_cartpole", "meta_rl_dmc",
    )),
}


def notebook_names() -> list[str]:
    return sorted(path.stem for path in NOTEBOOK_DIR.glob("*.ipynb"))


def notebook_parameters(name: str) -> list[str]:
    check_choice("notebook", name, notebook_names())
    return list(papermill.inspect_notebook(str(NOTEBOOK_DIR / f"{name}.ipynb")))


def check_parameters(name: str, parameters: dict[str, Any]) -> None:
    """Raise ``SsmrlError`` unless every parameter is one of the notebook's and its value is
    one that the settings of the notebook's experiment(s) accept."""
    valid = notebook_parameters(name)
    for key in parameters:
        check_choice(f"parameter of notebook {name}", key, valid)
    profile = parameters.get("profile", "quick")
    targets = NOTEBOOK_SETTINGS.get(name, ())
    for module_name, prefix in targets:
        longer = [p for _, p in targets if len(p) > len(prefix) and p.startswith(prefix)]
        overrides = {
            key[len(prefix):]: value
            for key, value in parameters.items()
            if key != "profile" and key.startswith(prefix)
            and not any(key.startswith(p) for p in longer)
        }
        importlib.import_module(module_name).settings_for(profile, **overrides)


def execute(name: str, parameters: dict[str, Any], output_dir: Path = BOOK_DIR) -> Path:
    """Run notebook ``name`` with ``parameters``; return the executed notebook's path."""
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
        with environment(KERNEL_ENVIRONMENT):
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
