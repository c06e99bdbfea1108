"""Dataset cards (``datasets/<name>.toml``): the one copy of each dataset's facts, read by the adapters.

A card says what a full copy holds (``[counts]``), where a copy is looked for and how to get one
(``[location]``), and whatever else an adapter needs (class lists, file names, archives). Cards are read on
first use, never when a module is imported.

``[location]``: ``subdirs`` are tried under ``--data-root`` in order (``"."`` = ``--data-root`` itself),
then the folder named by the environment variable ``env``, then the fixed ``fallbacks`` (installed copies;
``~`` = home). ``how_to_get`` and the optional ``data_root`` (what ``--data-root`` should be, where
"containing <subdirs>" does not say it) make up the advice of the not-found error and of ``prepare``.
"""
from __future__ import annotations

import functools
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from benchmark.errors import BenchmarkError
from benchmark.resources import shipped


@functools.cache
def card(name: str) -> dict:
    """The parsed card datasets/<name>.toml; one object per process, so a test can patch a value in it."""
    path = shipped("datasets", f"{name}.toml")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise BenchmarkError(f"dataset card {path} is unreadable: {e}") from None


def fact(name: str, *keys: str):
    """One value of a card, e.g. ``fact("domainnet", "counts", "real_train")``; a missing one is a one-line error."""
    value = card(name)
    for depth, key in enumerate(keys, 1):
        if not isinstance(value, dict) or key not in value:
            raise BenchmarkError(f"dataset card datasets/{name}.toml has no {'.'.join(keys[:depth])}; reinstall oodbench")
        value = value[key]
    return value


def count(name: str, key: str) -> int:
    """An image (or line) count a full copy of the dataset has, from the card's [counts]."""
    n = fact(name, "counts", key)
    if not isinstance(n, int):
        raise BenchmarkError(f"dataset card datasets/{name}.toml: counts.{key} is {n!r}, not a number of images")
    return n


class NotFound(BenchmarkError):
    """No candidate folder holds the dataset; the message says where it looked and how to get a copy."""


@dataclass(frozen=True)
class Location:
    """Where one dataset is looked for and how to get it (see the module docstring)."""

    card: str
    title: str  # the dataset's name in messages (the card's short_title)
    subdirs: tuple[str, ...]
    env_var: str
    how_to_get: str
    data_root: str = ""
    fallbacks: tuple[str, ...] = ()

    def candidates(self, data_root: Path | None) -> list[Path]:
        dirs = [Path(data_root) / s for s in self.subdirs] if data_root else []
        if os.environ.get(self.env_var):
            dirs.append(Path(os.environ[self.env_var]))
        return dirs + [Path(p).expanduser() for p in self.fallbacks]

    def searched(self, data_root: Path | None) -> str:
        return ", ".join(map(str, self.candidates(data_root))) or f"nowhere (no --data-root, no ${self.env_var})"

    def where(self) -> str:
        """Where a copy goes, in a few words (for `benchmark list`)."""
        first = self.subdirs[0]
        return f"${self.env_var} or --data-root" + ("" if first == "." else f"/{first}")

    def advice(self) -> str:
        where = self.data_root or "containing " + " or ".join(self.subdirs)
        return f"{self.how_to_get}; then pass --data-root ({where}) or set {self.env_var}"

    def find(self, data_root: Path | None, looks_right: Callable[[Path], bool] = Path.is_dir) -> Path:
        """The first candidate that looks right; a one-line error saying where it looked and what to do."""
        chosen = os.environ.get(self.env_var)
        for d in self.candidates(data_root):
            if looks_right(d):
                return d
            if chosen and d == Path(chosen):  # asked for by name: never fall back to another copy silently
                raise BenchmarkError(f"${self.env_var} is {chosen}, which does not hold {self.title}; fix or unset it")
        raise NotFound(f"{self.title} not found (looked in: {self.searched(data_root)}); {self.advice()}")

    def report(self, data_root: Path | None) -> list[str]:
        """The opening lines of `benchmark prepare`: how to get the data and where it was looked for."""
        where = self.candidates(data_root)
        looked = (f"Looked in: {', '.join(map(str, where))}" if where else
                  f"Nowhere to look yet: no --data-root given and ${self.env_var} is not set")  # fmt: skip
        return [f"{self.title}: {self.advice()}.", f"{looked} (card: datasets/{self.card}.toml)"]

    def missing(self, data_root: Path | None, error: BenchmarkError) -> str:
        """`prepare`'s last line when the data is missing or bad. A NotFound is said in a few words: report's lines
        already say how to get the data and where it was looked for."""
        if isinstance(error, NotFound):
            return f"missing: {self.title} not found" + (" there" if self.candidates(data_root) else "")
        return f"missing/bad: {error}"


def location(name: str) -> Location:
    """Where dataset `name` is looked for, as its card says."""
    where = fact(name, "location")
    return Location(
        card=name,
        title=fact(name, "short_title"),
        subdirs=tuple(fact(name, "location", "subdirs")),
        env_var=fact(name, "location", "env"),
        how_to_get=fact(name, "location", "how_to_get"),
        data_root=where.get("data_root", ""),
        fallbacks=tuple(where.get("fallbacks", ())),
    )
