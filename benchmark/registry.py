"""A tiny name -> object registry shared by suites, methods and backbones (timm's register_model spirit)."""
from __future__ import annotations

from typing import Callable, Generic, TypeVar

from benchmark.errors import BenchmarkError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._descriptions: dict[str, str] = {}

    def register(self, name: str, description: str = "") -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = obj
            self._descriptions[name] = description or (getattr(obj, "description", "") or "").strip()
            return obj

        return add

    def get(self, name: str) -> T:
        if name not in self._items:
            raise BenchmarkError(f"unknown {self.kind} {name!r}; valid: {', '.join(sorted(self._items))}")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def describe(self) -> list[tuple[str, str]]:
        return [(n, self._descriptions[n]) for n in self.names()]

    def __contains__(self, name: str) -> bool:
        return name in self._items
