"""Where oodbench's own files are: what it ships (dataset cards and class lists from ``datasets/``,
published reference tables from ``results/reference/``, model configs) and the cache of what it derives.

The one place that knows the difference between a checkout and an installed package.
"""
from __future__ import annotations

import os
from pathlib import Path

from benchmark.errors import BenchmarkError

PACKAGE = Path(__file__).resolve().parent
CHECKOUT = PACKAGE.parent
# Shipped folders by name: where a checkout keeps them (relative to the repository root) and where an
# installed package keeps them (relative to the package; pyproject.toml maps the one onto the other).
SHIPPED = {
    "datasets": ("datasets", "_shipped/datasets"),
    "reference": ("results/reference", "_shipped/reference"),
    "assets": ("benchmark/models/assets", "models/assets"),
}
# Only an installed package has this folder: a checkout keeps the shipped files where it edits them.
INSTALLED_MARKER = PACKAGE / "_shipped"


def shipped_dir(name: str) -> Path:
    """The folder of shipped files `name` (one of SHIPPED)."""
    in_checkout, in_package = SHIPPED[name]
    return PACKAGE / in_package if INSTALLED_MARKER.is_dir() else CHECKOUT / in_checkout


def shipped(name: str, *parts: str) -> Path:
    """A shipped file; one-line error if this installation lacks it."""
    path = shipped_dir(name).joinpath(*parts)
    if not path.is_file():
        raise BenchmarkError(f"{'/'.join((SHIPPED[name][0], *parts))} is missing from this installation ({path}); reinstall oodbench")
    return path


def cache_root() -> Path:
    """Where derived data (corrupted sets, feature caches, zero-shot heads) lives: $OODBENCH_CACHE or
    ~/.cache/oodbench."""
    return Path(os.environ.get("OODBENCH_CACHE") or Path.home() / ".cache" / "oodbench")
