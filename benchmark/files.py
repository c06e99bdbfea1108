"""Atomic file writes: readers never see half a file, and what must not be overwritten is not."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from benchmark.errors import BenchmarkError


def atomic_write_bytes(path: Path, data: bytes, overwrite: bool = True) -> None:
    """Write via a temp file + rename. With overwrite=False an existing file is an error (os.link fails
    instead of replacing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise BenchmarkError(f"{path} already exists; records are never overwritten") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
