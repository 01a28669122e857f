"""The local Minari store: which datasets it holds, valid ids, and building a dataset safely.

A dataset appears under its id only once it is whole: :func:`building` gives the code that
writes it a scratch store inside the store's root (a hidden ``.building-*`` folder, which
listings skip), checks the result with ``minari.load_dataset`` and only then renames it into
place. A killed build therefore leaves nothing under the id, and the next attempt starts over.
A lock per id lets two processes that need the same dataset at once build it once: the second
waits and finds it made. :func:`remove_dataset` works the other way round: the dataset leaves
its id at once and is deleted from scratch. :func:`local_dataset_ids` lists what is complete
and names, in one warning line, any folder that is not (instead of failing as
``minari.list_local_datasets`` does on a folder whose name is no dataset id).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import minari
from minari.dataset.minari_dataset import DATASET_ID_RE

from ssmrl_lib.errors import SsmrlError
from ssmrl_lib.paths import environment

_LOG = logging.getLogger("ssmrl")
_SCRATCH_PREFIX = ".building-"
_LOCK_DIR = ".locks"
_NAMESPACE_FILE = "namespace_metadata.json"
_warned: set[tuple[str, ...]] = set()


def store_root() -> Path:
    """The store's root directory (``$MINARI_DATASETS_PATH`` or Minari's default)."""
    return Path(minari.storage.get_dataset_path())


def check_dataset_id(dataset_id: str) -> None:
    """Raise ``SsmrlError`` unless ``dataset_id`` follows Minari's id grammar with a version,
    ``(namespace/)name-vN`` (Minari's own regex; Minari cannot list an id without version)."""
    match = DATASET_ID_RE.fullmatch(dataset_id) if isinstance(dataset_id, str) else None
    if match is None or match.group("version") is None:
        raise SsmrlError(
            f"malformed dataset id {dataset_id!r}: ids are namespace/name-vN "
            "(letters, digits, '-', '_'; e.g. ssmrl/hopper/medium-v0)"
        )


def local_dataset_ids() -> list[str]:
    """Ids of the complete datasets in the local store, sorted; incomplete folders are skipped
    and named in one warning line (once per process)."""
    root = store_root()
    complete, broken = [], []
    for candidate in _dataset_folders(root, root):
        dataset_id = candidate.relative_to(root).as_posix()
        (complete if _is_complete(candidate, dataset_id) else broken).append(dataset_id)
    if broken and (str(root), *broken) not in _warned:
        _warned.add((str(root), *broken))
        _LOG.warning(
            "ssmrl: warning: skipping %d incomplete or misnamed folder(s) in the Minari store "
            "%s: %s (delete them, or rebuild the dataset to replace them)",
            len(broken), root, ", ".join(broken),
        )
    return sorted(complete)


def _dataset_folders(root: Path, folder: Path) -> Iterator[Path]:
    """Folders holding a ``data`` directory (as Minari finds datasets), hidden ones skipped."""
    if (folder / "data").is_dir() and folder != root:
        yield folder
        return
    for child in sorted(folder.iterdir()) if folder.is_dir() else ():
        if child.is_dir() and not child.name.startswith("."):
            yield from _dataset_folders(root, child)


def _is_complete(folder: Path, dataset_id: str) -> bool:
    """A valid id, metadata naming that id, and the episode file(s) next to it."""
    data = folder / "data"
    try:
        check_dataset_id(dataset_id)
        metadata = json.loads((data / "metadata.json").read_text())
    except (SsmrlError, OSError, ValueError):
        return False
    has_episodes = any(path.name != "metadata.json" for path in data.iterdir())
    return metadata.get("dataset_id") == dataset_id and has_episodes


@contextmanager
def dataset_lock(dataset_id: str) -> Iterator[None]:
    """Hold the store's lock for ``dataset_id`` (another process asking for it waits)."""
    lock_dir = store_root() / _LOCK_DIR
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / (dataset_id.replace("/", "__") + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def building(dataset_id: str) -> Iterator[Path]:
    """Build ``dataset_id`` in a scratch store, then move it into place whole.

    Inside the block ``MINARI_DATASETS_PATH`` points at the scratch store (its path is
    yielded), so ``minari.create_dataset_from_buffers(dataset_id, ...)`` writes there. On
    leaving the block the dataset must load with ``minari.load_dataset``; it then replaces
    whatever folder was at its id. Call it while holding :func:`dataset_lock`.
    """
    check_dataset_id(dataset_id)
    root = store_root()
    _remove_abandoned_scratch(root)
    scratch = Path(tempfile.mkdtemp(prefix=f"{_SCRATCH_PREFIX}{_owner()}-", dir=root))
    try:
        with environment({"MINARI_DATASETS_PATH": str(scratch)}):
            yield scratch
            try:
                minari.load_dataset(dataset_id)
            except Exception as error:
                raise SsmrlError(
                    f"dataset {dataset_id!r} did not read back after writing ({error})"
                ) from error
        _move_into_place(scratch, root, dataset_id)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _move_into_place(scratch: Path, root: Path, dataset_id: str) -> None:
    target = root / dataset_id
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():  # set the old one aside first: the id is never empty while replaced
        old = scratch / ".replaced"
        os.replace(target, old)
    os.replace(scratch / dataset_id, target)
    # Minari describes each namespace level (ssmrl/, ssmrl/<env>/) in a small file.
    for namespace_file in scratch.rglob(_NAMESPACE_FILE):
        destination = root / namespace_file.relative_to(scratch)
        if not destination.exists():
            os.replace(namespace_file, destination)


def remove_dataset(dataset_id: str) -> None:
    """Remove ``dataset_id`` from the store, if it is there; call it while holding
    :func:`dataset_lock`. The folder is first renamed into a scratch store, so a removal killed
    half-way leaves no half-deleted dataset under the id (only scratch, cleared later)."""
    check_dataset_id(dataset_id)
    root = store_root()
    target = root / dataset_id
    if not target.exists():
        return
    scratch = Path(tempfile.mkdtemp(prefix=f"{_SCRATCH_PREFIX}{_owner()}-", dir=root))
    try:
        os.replace(target, scratch / "removed")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _owner() -> str:
    return f"{socket.gethostname()}@{os.getpid()}"


def _remove_abandoned_scratch(root: Path) -> None:
    """Scratch stores of builds on this host whose process is gone (killed builds)."""
    prefix = f"{_SCRATCH_PREFIX}{socket.gethostname()}@"
    for scratch in root.glob(f"{prefix}*"):
        pid = scratch.name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(scratch, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
