"""Suites and datasets: one adapter module per dataset family, each registering its suites and its
`benchmark prepare` entry. The registry lists the modules; none is imported, and no file read, until a
suite or dataset is looked up.

A suite is defined with everything a run on it shares: how to build it, its default sizes, and its
training recipe (the budget every method on it trains with), plus the default backbone, resolution
and methods. A suite without a complete recipe is refused when it is defined.

A suite can also come from a suite card, a TOML file of the user's (benchmark.data.custom): wherever a suite is
named (`--suite`, plan), a path ending in .toml is read and registered under the card's `name` (resolve_suite).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from benchmark.data.base import Suite
from benchmark.errors import BenchmarkError
from benchmark.registry import Registry
from benchmark.resources import cache_root

ADAPTERS = tuple(f"benchmark.data.{m}" for m in ("digits", "fmnist", "segproxy", "imagenet", "imagenet_c", "domainnet", "pascal"))
# What every suite's recipe sets (with SGD also momentum and nesterov); sources beside each recipe.
RECIPE_KEYS = ("optimizer", "lr", "weight_decay", "epochs", "batch_size", "warmup_steps", "grad_clip", "eval_batch_size")
SGD_KEYS = ("momentum", "nesterov")


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    description: str
    build: Callable[["SuiteOptions"], Suite]
    recipe: dict
    sizes: dict
    backbone: str
    image_size: int
    methods: tuple[str, ...]
    # The datasets a build with these (resolved) sizes reads: {`benchmark prepare` name: find(data_root)}, each
    # finder the one the builder calls first (a one-line BenchmarkError when the data is not there). Lets a
    # request check all its data before anything runs.
    needs: Callable[[dict], dict[str, Callable]] | None = None
    # The seeds a run without --seed trains: several where one seed's number would be noise.
    seeds: tuple[int, ...] = (0,)

    def __post_init__(self):
        needed = RECIPE_KEYS + (SGD_KEYS if self.recipe.get("optimizer") == "sgd" else ())
        missing = [k for k in needed if k not in self.recipe]
        if missing:
            raise ValueError(f"suite {self.name}: its recipe lacks {missing}; every suite defines its full training recipe")

    def resolve_sizes(self, overrides: dict) -> dict:
        """The suite's size options: its defaults, then the overrides, each read in its default's form (a
        tuple from 'a,b' or a single item, a count as a positive int); unknown keys and bad values are
        one-line errors. The suite's builder checks what depends on the data."""
        unknown = set(overrides) - set(self.sizes)
        if unknown:
            raise BenchmarkError(f"unknown {self.name} size option(s) {sorted(unknown)}; valid: {sorted(self.sizes)}")
        return {**self.sizes, **{k: size_value(self.name, k, v, self.sizes[k]) for k, v in overrides.items()}}


def size_value(suite: str, key: str, value, default):
    """One size override in the form of its default; a one-line error when it cannot be."""
    where = f"--size {key}={value!r} ({suite})"
    if isinstance(default, tuple):
        items = [s.strip() for s in value.split(",") if s.strip()] if isinstance(value, str) else (
            list(value) if isinstance(value, (list, tuple)) else [value])  # fmt: skip
        if not items:
            raise BenchmarkError(f"{where}: give at least one item, e.g. {key}={','.join(map(str, default[:2]))}")
        if all(isinstance(d, int) for d in default):
            if not all(isinstance(i, int) or (isinstance(i, str) and i.isdigit()) for i in items):
                raise BenchmarkError(f"{where}: expects whole numbers, e.g. {key}={','.join(map(str, default[:2]))}")
            items = [int(i) for i in items]
        return tuple(items)
    if isinstance(default, bool) or default is None:
        return value
    if isinstance(default, int):
        lowest = 0 if key.endswith("seed") else 1  # counts and sizes are positive; a data seed may be 0
        if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
            raise BenchmarkError(f"{where}: expects a whole number >= {lowest}")
        if key.endswith("seed") and value >= 2**32:
            raise BenchmarkError(f"{where}: a seed must be below 2**32")
    if isinstance(default, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise BenchmarkError(f"{where}: expects a number")
    return value


class SuiteRegistry(Registry[SuiteSpec]):
    """The adapters' suites, and those of the suite cards read in this process (see resolve_suite)."""

    def __init__(self):
        super().__init__("suite", modules=ADAPTERS)
        self.cards: dict[str, Path] = {}  # suite name -> the card it was read from

    def register_card(self, spec: SuiteSpec, card: Path) -> None:
        """Register a card's suite; a card read again (perhaps edited) replaces its earlier reading."""
        self.load()
        if spec.name in self._items and spec.name not in self.cards:
            raise BenchmarkError(f"suite card {card}: name {spec.name!r} is taken by a built-in suite; give the card another name")
        self._items.pop(spec.name, None)
        self.register(spec.name, spec.description, module="benchmark.data.custom")(spec)
        self.cards[spec.name] = card


SUITES = SuiteRegistry()
# `benchmark prepare NAME`: fn(data_root, download) -> PrepareReport (what to get, where; is it there?)
DATASETS: Registry[Callable[..., "PrepareReport"]] = Registry("dataset", modules=ADAPTERS)


def register_suite(name: str, description: str, *, recipe: dict, sizes: dict, backbone: str, image_size: int,
                   methods, needs: Callable[[dict], dict[str, Callable]], seeds: tuple[int, ...] = (0,)) -> Callable:
    """Decorator for a suite builder ``fn(SuiteOptions) -> Suite``: registers its SuiteSpec."""
    def add(build):
        SUITES.register(name, description, module=build.__module__)(SuiteSpec(name, description, build, dict(recipe), dict(sizes), backbone,
                                                      image_size, tuple(methods), needs, tuple(seeds)))  # fmt: skip
        return build

    return add


@dataclass
class PrepareReport:
    ok: bool
    text: str


@dataclass
class SuiteOptions:
    """What a suite builder gets: where the data is, the backbone's preprocessing, and its sizes (resolved
    against the suite's defaults by build_suite)."""

    data_root: Path | None
    train_transform: Callable
    eval_transform: Callable
    sizes: dict = field(default_factory=dict)
    cache_dir: Path = field(default_factory=cache_root)
    workers: int = 2
    progress: bool = True


def resolve_suite(name: str) -> str:
    """The registered name of a suite: a suite card (a path ending in .toml) is read and registered under the
    name it gives (its records go to runs/<name>/); any other name is returned as it is."""
    if Path(name).suffix.lower() != ".toml":
        return name
    from benchmark.data.custom import card_suite

    spec = card_suite(Path(name))
    SUITES.register_card(spec, Path(name))
    return spec.name


def missing_data(suite: str, sizes: dict, data_root) -> dict[str, str]:
    """{dataset: why} for each dataset a build of `suite` with these resolved sizes reads that cannot be found."""
    spec = SUITES.get(suite)
    if spec.needs is None:
        raise BenchmarkError(f"suite {suite} does not say which datasets it reads; run it with `benchmark run`")
    missing = {}
    for name, find in spec.needs(sizes).items():
        try:
            find(data_root)
        except BenchmarkError as e:
            missing[name] = str(e)
    return missing


def build_suite(name: str, options: SuiteOptions) -> Suite:
    spec = SUITES.get(name)
    return spec.build(replace(options, sizes=spec.resolve_sizes(options.sizes)))
