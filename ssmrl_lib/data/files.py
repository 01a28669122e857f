"""Files whose bytes depend only on their contents: a dataset's provenance names its sources
(policy checkpoints, replay transitions) by hash, so re-exporting the same arrays must give the
same file."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np


def npz_bytes(**arrays: np.ndarray) -> bytes:
    """``np.savez_compressed`` without its time stamps: the same arrays give the same bytes,
    so re-exporting the same policy or transitions changes neither the committed file nor its
    hash."""
    payload = io.BytesIO()
    with zipfile.ZipFile(payload, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            entry = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(entry, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
    return payload.getvalue()


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
