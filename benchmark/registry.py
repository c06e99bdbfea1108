"""A tiny name -> object registry shared by suites, methods, backbones and bench sections (timm's
register_model spirit).

A registry is filled by ``@REGISTRY.register(name)`` decorators in the modules it lists; they are imported
on first use. The order of that list is the registry's order (tables list methods in it), whichever module
happens to be imported first.
Nothing is imported, and no file is read, when the registry itself is created.
"""
from __future__ import annotations

import importlib
import sys
from typing import Callable, Generic, Sequence, TypeVar

from benchmark.errors import BenchmarkError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, modules: Sequence[str] = (), name_attr: str | None = None):
        self.kind = kind
        self.modules = tuple(modules)
        # When set, the registration key is written to this attribute of the object (a method's `name`),
        # so the name exists in one place only.
        self.name_attr = name_attr
        self._items: dict[str, T] = {}
        self._descriptions: dict[str, str] = {}
        self._modules: dict[str, str] = {}
        self._loaded = False

    def register(self, name: str, description: str = "", module: str | None = None) -> Callable[[T], T]:
        """`module`: the module that defines the entry (default: the one calling register), for ordering."""
        module = module or sys._getframe(1).f_globals.get("__name__", "")

        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            if self.name_attr:
                setattr(obj, self.name_attr, name)
            self._items[name] = obj
            self._modules[name] = module
            self._descriptions[name] = description or (getattr(obj, "description", "") or "").strip()
            return obj

        return add

    def load(self) -> None:
        """Import the listed modules once (each registers its entries)."""
        if not self._loaded:
            self._loaded = True
            for module in self.modules:
                importlib.import_module(module)

    def get(self, name: str) -> T:
        self.load()
        if name not in self._items:
            raise BenchmarkError(f"unknown {self.kind} {name!r}; valid: {', '.join(sorted(self._items))}")
        return self._items[name]

    def names(self) -> list[str]:
        """Names in declared order (the modules' order, then registration order within a module; entries from
        modules not listed, e.g. registered by tests, last)."""
        self.load()
        rank = {m: i for i, m in enumerate(self.modules)}
        return sorted(self._items, key=lambda n: rank.get(self._modules.get(n), len(rank)))

    def describe(self) -> list[tuple[str, str]]:
        return [(n, self._descriptions[n]) for n in self.names()]

    def __contains__(self, name: str) -> bool:
        self.load()
        return name in self._items
