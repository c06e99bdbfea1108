"""Method registry. Each module in this package defines one method and registers it on import:

    @METHODS.register("ft")
    class FT(Method): ...

The registration key is the method's name (``FT.name``). Adding a method = one file here, its module in
the list below, and one test; the harness needs no change. The list's order is the order of every table:
baselines first, then the robust fine-tuning methods.
"""
from __future__ import annotations

from benchmark.registry import Registry
from methods.base import Method

METHODS: Registry[type[Method]] = Registry("method", name_attr="name", modules=[f"methods.{m}" for m in (
    "zeroshot", "lp", "ft", "lp_ft", "wise_ft", "soup", "l2_sp", "tpgm", "ftp", "fsr", "lipsum_ft", "flyp",
)])  # fmt: skip

__all__ = ["METHODS", "Method"]
