"""Atomic file writes: readers never see half a file, and what must not be overwritten is not."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

from benchmark.errors import BenchmarkError


def current_umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_writer(path: Path, overwrite: bool = True) -> Iterator[BinaryIO]:
    """A binary file whose contents appear at `path` only when complete and fsynced (temp file + rename), so a
    crash or a full disk never leaves a half-written file there. With overwrite=False an existing file is an
    error (os.link fails instead of replacing). Any failure leaves no temp file; a failed write (full disk,
    no permission) is a one-line BenchmarkError naming `path`."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600; results are shared files like any other
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise BenchmarkError(f"{path} already exists; records are never overwritten") from None
    except OSError as e:
        raise BenchmarkError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path: Path, data: bytes, overwrite: bool = True) -> None:
    with atomic_writer(path, overwrite) as f:
        f.write(data)
