"""`benchmark bench`: speed targets as ratios measured side by side in one run (never timed tests).

Sections register themselves here; each returns printable lines. Modules named ``bench_*.py`` in this
package are imported on demand so each section lives beside what it measures.
"""
from __future__ import annotations

import importlib
import pkgutil
import time
from typing import Callable

import benchmark
from benchmark.registry import Registry

SECTIONS: Registry[Callable[..., list[str]]] = Registry("bench section")


def load_sections() -> None:
    for info in pkgutil.iter_modules(benchmark.__path__):
        if info.name.startswith("bench_"):
            importlib.import_module(f"benchmark.{info.name}")


def best_time(fn: Callable[[], object], repeats: int = 3, clock: Callable[[], float] = time.perf_counter) -> float:
    """Best of `repeats` wall times (the least disturbed by other load), in seconds; with
    clock=time.process_time, CPU seconds of this process instead."""
    times = []
    for _ in range(repeats):
        t = clock()
        fn()
        times.append(clock() - t)
    return min(times)
