"""Method registry. Each module in this package defines one method and registers it on import:

    @METHODS.register("ft")
    class FT(Method): ...

Adding a method = one file here + one test; the harness needs no change.
"""
from __future__ import annotations

import importlib
import pkgutil

from benchmark.registry import Registry
from methods.base import Method, RunContext

METHODS: Registry[type[Method]] = Registry("method")

for _info in pkgutil.iter_modules(__path__):
    if _info.name != "base":
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["METHODS", "Method", "RunContext"]
