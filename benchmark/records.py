"""Run records: one immutable JSON per run under results/runs/<suite>/<run_id>.json, written atomically.

Long format: ``evals`` is a list of ``{variant, eval, role, group, metric, value, n}`` rows.
A finished record is never overwritten; an interrupted run leaves only its checkpoint beside it.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from benchmark.errors import BenchmarkError

def atomic_write_bytes(path: Path, data: bytes, overwrite: bool = True) -> None:
    """Write via a temp file + rename, so readers never see half a file. With overwrite=False an
    existing file is an error (os.link fails instead of replacing)."""
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


def record_path(results: Path, suite: str, run_id: str) -> Path:
    return Path(results) / "runs" / suite / f"{run_id}.json"


def write_record(results: Path, record: dict) -> Path:
    path = record_path(results, record["config"]["suite"], record["run_id"])
    atomic_write_bytes(path, (json.dumps(record, indent=1, sort_keys=True) + "\n").encode(), overwrite=False)
    return path


def read_record(path: Path) -> dict:
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise BenchmarkError(f"unreadable record {path}: {e}") from None
    missing = {"run_id", "config", "evals", "status"} - set(record)
    if missing:
        raise BenchmarkError(f"record {path} lacks {sorted(missing)}")
    return record


def load_records(results: Path, suite: str) -> list[dict]:
    directory = Path(results) / "runs" / suite
    return [read_record(p) for p in sorted(directory.glob("*.json"))]
