"""`benchmark bench`: speed targets as ratios measured side by side in one run (never timed tests).

Sections register themselves in SECTIONS, one module of this package each; each returns printable lines.
"""
from __future__ import annotations

import time
from typing import Callable

from benchmark.registry import Registry

SECTIONS: Registry[Callable[..., list[str]]] = Registry(
    "bench section", modules=("benchmark.speed.methods", "benchmark.speed.corruptions", "benchmark.speed.data"))


def best_time(fn: Callable[[], object], repeats: int = 3, clock: Callable[[], float] = time.perf_counter) -> float:
    """Best of `repeats` wall times (the least disturbed by other load), in seconds; with
    clock=time.process_time, CPU seconds of this process instead."""
    times = []
    for _ in range(repeats):
        t = clock()
        fn()
        times.append(clock() - t)
    return min(times)
