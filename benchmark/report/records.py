"""Run records: one immutable JSON per run under results/runs/<suite>/<run_id>.json, written atomically.

Long format: ``evals`` is a list of ``{variant, eval, role, group, metric, value, n}`` rows. A record in
results/runs/<suite>/ is a finished run; an interrupted run leaves only its checkpoint beside it. A record
is never overwritten or deleted: ``benchmark run --rerun`` moves the old one into
results/runs/<suite>/superseded/ (renamed with the time it was superseded) before the new one takes its
place. Every record carries the identity of the code that produced it (``code``) and library versions.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmark.errors import BenchmarkError
from benchmark.files import atomic_write_bytes
from benchmark.resources import PACKAGE, shipped_dir

SUPERSEDED = "superseded"
# A record or checkpoint write takes well under a second; a temp file this old was left by a killed process.
STALE_TMP_S = 600
# Source folders whose content is the code identity (with the shipped dataset cards and class lists).
SOURCE_PACKAGES = ("benchmark", "methods")


def record_path(results: Path, suite: str, run_id: str) -> Path:
    return Path(results) / "runs" / suite / f"{run_id}.json"


def writable_folder(folder: Path, what: str) -> int:
    """Make `folder` and prove it writable now, before hours of work depend on it; returns its free bytes.
    Temp files older than STALE_TMP_S that a killed write left behind are removed on the way."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check.", suffix=".tmp"):
            pass
    except OSError as e:
        raise BenchmarkError(f"the {what} folder {folder} is not writable: {e.strerror}") from None
    cutoff = time.time() - STALE_TMP_S
    for stale in folder.glob(".*.tmp"):
        try:
            if stale.stat().st_mtime < cutoff:
                stale.unlink()
        except OSError:
            pass  # another process's file, gone or busy: not ours to insist on
    return shutil.disk_usage(folder).free


def write_record(results: Path, record: dict, supersede: bool = False) -> Path:
    """Write a new record; with supersede, an existing record of the same run id is moved aside first."""
    path = record_path(results, record["config"]["suite"], record["run_id"])
    if supersede and path.exists():
        move_aside(path)
    atomic_write_bytes(path, (json.dumps(record, indent=1, sort_keys=True) + "\n").encode(), overwrite=False)
    return path


def move_aside(path: Path) -> Path:
    """Move a record into its suite's superseded/ folder under a new name; nothing there is replaced."""
    folder = path.parent / SUPERSEDED
    folder.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for n in range(1000):
        target = folder / f"{path.stem}.{stamp}{f'.{n}' if n else ''}.json"
        try:
            os.link(path, target)  # fails rather than replacing an existing file
        except FileExistsError:
            continue
        os.unlink(path)
        return target
    raise BenchmarkError(f"cannot move {path} aside: too many superseded copies in {folder}")


def read_record(path: Path) -> dict:
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise BenchmarkError(f"unreadable record {path}: {e}") from None
    missing = {"run_id", "config", "evals"} - set(record)
    if missing:
        raise BenchmarkError(f"record {path} lacks {sorted(missing)}")
    return record


ROLES = ("id", "ood", "selection")


def problem_of(record: dict, path: Path) -> str | None:
    """Why a record cannot be tabulated (schema, ranges, consistency), or None. Every metric recorded is a
    fraction (top-1, mIoU, pixel accuracy), so a value outside [0, 1] or not finite is damage."""
    cfg = record.get("config")
    if not isinstance(cfg, dict) or not all(isinstance(cfg.get(k), str) for k in ("suite", "method", "backbone")):
        return "config lacks suite, method or backbone"
    if cfg["suite"] != path.parent.name or record["run_id"] != path.stem:
        return f"it says run {record['run_id']} of suite {cfg['suite']}, but lies at {path.parent.name}/{path.name}"
    if not isinstance(cfg.get("seed"), int) or isinstance(cfg.get("seed"), bool):
        return "config lacks an integer seed"
    rows = record["evals"]
    if not isinstance(rows, list) or not rows:
        return "no evaluation rows"
    evals_of: dict[str, set] = {}
    for row in rows:
        if not isinstance(row, dict) or not all(isinstance(row.get(k), str) for k in ("variant", "eval", "metric")):
            return "an evaluation row lacks its variant, eval or metric"
        value = row.get("value")
        if row.get("role") not in ROLES:
            return f"eval {row['eval']} has role {row.get('role')!r}"
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            return f"{row['variant']} {row['eval']} {row['metric']} = {value!r}, not a fraction in [0, 1]"
        evals_of.setdefault(row["variant"], set()).add((row["eval"], row["role"], row["metric"]))
    shapes = list(evals_of.values())
    if any(shape != shapes[0] for shape in shapes):
        return "its variants were scored on different eval sets (rows missing)"
    if not {"id", "selection"} <= {role for _, role, _ in shapes[0]}:
        return "it has no ID or no selection rows"
    return None


def scan_records(results: Path, suite: str) -> tuple[list[dict], list[tuple[Path, str]]]:
    """The suite's current records that can be tabulated, and (path, why) for those that cannot, each named
    in a one-line warning. Superseded records are kept apart and not read."""
    good, bad = [], []
    for path in sorted((Path(results) / "runs" / suite).glob("*.json")):
        try:
            record = read_record(path)
        except BenchmarkError as e:
            bad.append((path, str(e)))
            continue
        problem = problem_of(record, path)
        if problem:
            bad.append((path, f"record {path} left out: {problem}"))
        else:
            good.append(record)
    for _, why in bad:
        print(f"warning: {why}", file=sys.stderr)
    return good, bad


def load_records(results: Path, suite: str) -> list[dict]:
    """The suite's records that can be tabulated (each one left out is named in a one-line warning)."""
    return scan_records(results, suite)[0]


def source_files() -> list[tuple[str, Path]]:
    """(name, path) of every file whose content defines the code: the packages' Python sources and the
    shipped dataset cards and class lists, named the same in a checkout and an installed package."""
    files = []
    for package in SOURCE_PACKAGES:
        root = PACKAGE.parent / package if package != "benchmark" else PACKAGE
        files += [(f"{package}/{p.relative_to(root).as_posix()}", p) for p in root.rglob("*.py")]
    data = shipped_dir("datasets")
    files += [(f"datasets/{p.relative_to(data).as_posix()}", p) for p in data.rglob("*") if p.is_file()]
    return sorted(f for f in files if "__pycache__" not in f[0])


@functools.cache
def code_identity() -> dict:
    """What code wrote a record: a hash of the source (equal code, equal hash, wherever it is installed), and
    the git commit with a dirty flag when the code runs from a git checkout."""
    digest = hashlib.sha256()
    for name, path in source_files():
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    identity = {"source_sha256": digest.hexdigest()[:16], "commit": None, "dirty": None}
    root = PACKAGE.parent
    if (root / ".git").exists():
        try:
            commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
            status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", *SOURCE_PACKAGES, "datasets"],
                                    capture_output=True, text=True, check=True)  # fmt: skip
            identity.update(commit=commit.stdout.strip(), dirty=bool(status.stdout.strip()))
        except (OSError, subprocess.CalledProcessError):
            pass  # git missing or not a repository: the source hash still identifies the code
    return identity


def code_label(record: dict) -> str:
    """Short human name of a record's code: commit (+dirty) and source hash; records older than code
    identity say so."""
    code = record.get("code")
    if not code:
        return "unknown (record predates code identity)"
    commit = f"{code['commit'][:10]}{'+dirty' if code.get('dirty') else ''} " if code.get("commit") else ""
    return f"{commit}source {code['source_sha256']}"


def library_versions() -> dict:
    import numpy
    import open_clip
    import pandas
    import timm
    import torch
    import torchvision

    from benchmark import __version__

    return {"oodbench": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "timm": timm.__version__, "open_clip": open_clip.__version__, "numpy": numpy.__version__,
            "pandas": pandas.__version__, "python": platform.python_version()}  # fmt: skip
