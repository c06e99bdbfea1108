"""Suite registry. Every module in this package registers its suites on import (one adapter per file)."""
from __future__ import annotations

import importlib
import os
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from benchmark.data.base import Suite
from benchmark.registry import Registry

SUITES: Registry[Callable[["SuiteOptions"], Suite]] = Registry("suite")
# `benchmark prepare NAME`: fn(data_root, download) -> PrepareReport (what to get, where; is it there?)
DATASETS: Registry[Callable[..., "PrepareReport"]] = Registry("dataset")


@dataclass
class PrepareReport:
    ok: bool
    text: str


def cache_root() -> Path:
    """Where derived data (corrupted sets, feature caches) lives: $OODBENCH_CACHE or ~/.cache/oodbench."""
    return Path(os.environ.get("OODBENCH_CACHE") or Path.home() / ".cache" / "oodbench")


@dataclass
class SuiteOptions:
    """What a suite builder gets: where the data is, the backbone's preprocessing, and size overrides."""

    data_root: Path | None
    train_transform: Callable
    eval_transform: Callable
    # Suite-specific size knobs (e.g. {"n_train": 2000}); unknown keys are an error in the builder.
    sizes: dict = field(default_factory=dict)
    cache_dir: Path = field(default_factory=cache_root)
    workers: int = 2
    progress: bool = True


def build_suite(name: str, options: SuiteOptions) -> Suite:
    return SUITES.get(name)(options)


def _import_adapters() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.name not in ("base",):
            importlib.import_module(f"{__name__}.{info.name}")


_import_adapters()
