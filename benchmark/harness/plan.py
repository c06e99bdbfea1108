"""Planning: from what the user asked (suite, methods, seeds, overrides) to fully resolved runs.

Hyper-parameters resolve as: the suite's recipe < the method's defaults < the method's per-suite recipe <
command-line overrides. The suite's recipe fixes the training budget that every method on it shares
(BUDGET_KEYS, plus the image size and data sizes, which only the user sets). A method may change a budget key
only by declaring the departure, with its source, in ``Method.DEPARTURES``; anything else is a defect caught
here. Every difference from the suite's budget, declared or asked for on the command line (budget keys,
image size, data sizes), is listed in the plan, written into the record, and shown in tables.

Nothing here reads data or builds a model: ``benchmark run --dry-run`` prints exactly these plans.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from benchmark.data import SUITES, resolve_suite
from benchmark.engine.loop import OPTIMIZERS
from benchmark.errors import BenchmarkError
from benchmark.report import records
from methods import METHODS
from methods.base import check_range

DEFAULT_SUITE = "digits"
# The training budget of a suite's recipe: optimizer, lr schedule, length, batch size and clipping.
BUDGET_KEYS = ("optimizer", "momentum", "nesterov", "epochs", "batch_size", "warmup_steps", "grad_clip")
OVERRIDE_SOURCE = "command line"
# Keys a run may set that no recipe names, with their defaults. Each is in a run's hparams (and so its run id)
# only when set to another value, so configurations that leave it alone keep their run ids.
# accum_steps: micro-batches per optimizer step on each device (benchmark/engine/loop.py). Not a budget key: the
# recipe's batch_size stays the global batch of one optimizer step (per-device batch x devices x accum_steps),
# so the budget is unchanged. It is in the run id when set because it changes what the step computes on
# BatchNorm networks (statistics of micro-batches) and, by float rounding, elsewhere.
OPTIONAL_KEYS = {"accum_steps": 1}


@dataclass
class RunConfig:
    suite: str
    method: str
    backbone: str
    seed: int
    image_size: int
    hparams: dict
    sizes: dict = field(default_factory=dict)  # resolved: the suite's defaults with the overrides applied
    pretrained: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def run_id(self) -> str:
        return run_id_of(self.method, self.to_dict())


def run_id_of(method: str, config: dict) -> str:
    """A record's name: its method and a hash of everything its run used."""
    blob = json.dumps(config, sort_keys=True, default=list)
    return f"{method}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


@dataclass
class PlannedRun:
    config: RunConfig
    # Budget keys where this run differs from its suite's recipe: {key: {value, suite, source}}.
    departures: dict

    def describe(self, results) -> dict:
        """One line of `benchmark run --dry-run`."""
        cfg = self.config
        path = records.record_path(results, cfg.suite, cfg.run_id)
        return {"suite": cfg.suite, "method": cfg.method, "backbone": cfg.backbone, "seed": cfg.seed,
                "image_size": cfg.image_size, "hparams": cfg.hparams, "sizes": cfg.sizes,
                "departures": self.departures, "run_id": cfg.run_id, "record_exists": path.exists(),
                "record": str(path)}  # fmt: skip


def suite_recipe(suite: str) -> dict:
    return dict(SUITES.get(suite).recipe)


def resolve_hparams(suite: str, method_cls, overrides: dict) -> dict:
    """Suite recipe < method defaults < method's per-suite recipe < command-line overrides."""
    own = method_cls.hparams_for(suite)
    undeclared = sorted(set(own) & set(BUDGET_KEYS) - set(method_cls.DEPARTURES))
    if undeclared:
        raise ValueError(f"method {method_cls.name} changes the shared budget {undeclared} on {suite} without "
                         f"declaring it in DEPARTURES (with its source)")  # fmt: skip
    hp = {**suite_recipe(suite), **own}
    known = set(hp) | set(OPTIONAL_KEYS)
    unknown = set(overrides) - known
    if unknown:
        raise BenchmarkError(f"unknown hyper-parameter(s) {sorted(unknown)} for {method_cls.name}; valid: {', '.join(sorted(known))}")
    for key, value in overrides.items():
        hp[key] = coerce(key, hp.get(key, OPTIONAL_KEYS.get(key)), value)
    hp = {k: v for k, v in hp.items() if not (k in OPTIONAL_KEYS and v == OPTIONAL_KEYS[k])}
    check_recipe(method_cls.name, hp)
    method_cls.check(hp)
    return hp


def check_recipe(owner: str, hp: dict) -> None:
    """The shared recipe keys' valid ranges. Checked for every method, those that train nothing (lp, zeroshot)
    included, so that no value is accepted that would train wrongly (gradient ascent, zero epochs) or not at all."""
    if hp["optimizer"] not in OPTIMIZERS:
        raise BenchmarkError(f"{owner}: optimizer={hp['optimizer']!r} is unknown; valid: {', '.join(OPTIMIZERS)}")
    check_range(owner, "lr", hp["lr"], 0, low_open=True)
    check_range(owner, "weight_decay", hp["weight_decay"], 0)
    check_range(owner, "grad_clip", hp["grad_clip"], 0)  # 0 = no clipping
    for key in ("epochs", "batch_size", "eval_batch_size"):
        check_range(owner, key, hp[key], 1)
    check_range(owner, "warmup_steps", hp["warmup_steps"], 0)
    if "accum_steps" in hp:
        check_range(owner, "accum_steps", hp["accum_steps"], 1)
        if hp["batch_size"] % hp["accum_steps"]:  # the devices' share is checked when the run starts
            raise BenchmarkError(f"{owner}: batch_size {hp['batch_size']} is not divisible by accum_steps {hp['accum_steps']}")
    if "momentum" in hp:  # SGD recipes only
        check_range(owner, "momentum", hp["momentum"], 0, 1, high_open=True)


def departures(suite: str, method_cls, hp: dict, overridden=()) -> dict:
    """Budget keys where `hp` differs from the suite's recipe, each with where the difference comes from."""
    recipe = suite_recipe(suite)
    out = {}
    for key in BUDGET_KEYS:
        if key in hp and hp[key] != recipe.get(key):
            source = OVERRIDE_SOURCE if key in overridden else method_cls.DEPARTURES[key]
            out[key] = {"value": hp[key], "suite": recipe.get(key), "source": source}
    return out


def coerce(key: str, default, value):
    """Check an override against its default's type (ints are accepted where floats are expected)."""
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, (list, tuple)) and isinstance(value, (list, tuple)):
        return type(default)(value)
    if default is not None and type(value) is not type(default):
        # `run --set lr=1e-3,1e-2` reads a tuple: a grid, which is what `sweep` runs.
        grid = (f"; one run per value is a sweep: benchmark sweep --set {key}={','.join(map(str, value))}"
                if isinstance(value, (list, tuple)) else "")  # fmt: skip
        raise BenchmarkError(f"hyper-parameter {key} expects {type(default).__name__}, got {value!r}{grid}")
    return value


def plan(suite: str, methods=None, backbone: str | None = None, seeds=None, image_size: int | None = None,
         overrides: dict | None = None, sizes: dict | None = None) -> list[PlannedRun]:
    """Every (method, seed) run the request names, resolved. With several methods, an override applies to
    each method that has that hyper-parameter; one that no method has is an error. `suite`: a name, or a suite
    card's path (the runs are then of the suite it registers). `seeds`: None for the suite's default seeds."""
    suite = resolve_suite(suite)
    spec = SUITES.get(suite)
    overrides, sizes = dict(overrides or {}), dict(sizes or {})
    resolved_sizes = spec.resolve_sizes(sizes)
    method_classes = [METHODS.get(name) for name in (methods or spec.methods)]
    defaults_of = {cls.name: resolve_hparams(suite, cls, {}) for cls in method_classes}
    unused = set(overrides) - set().union(*defaults_of.values()) - set(OPTIONAL_KEYS)
    if unused:
        raise BenchmarkError(f"no selected method has hyper-parameter(s) {sorted(unused)}")
    # The image size and data sizes are part of the budget too; only the user can change them.
    asked = {"image_size": (image_size, spec.image_size)} if image_size is not None else {}
    asked.update({f"sizes.{k}": (resolved_sizes[k], spec.sizes[k]) for k in sizes})
    own_budget = {k: {"value": v, "suite": default, "source": OVERRIDE_SOURCE} for k, (v, default) in asked.items() if v != default}
    runs = []
    for cls in method_classes:
        mine = {k: v for k, v in overrides.items() if k in defaults_of[cls.name] or k in OPTIONAL_KEYS}
        hp = resolve_hparams(suite, cls, mine)
        differs = {**departures(suite, cls, hp, overridden=mine), **own_budget}
        for seed in seeds or spec.seeds:
            cfg = RunConfig(suite=suite, method=cls.name, backbone=backbone or spec.backbone, seed=seed,
                            image_size=spec.image_size if image_size is None else image_size, hparams=hp, sizes=resolved_sizes)  # fmt: skip
            runs.append(PlannedRun(cfg, differs))
    return runs

