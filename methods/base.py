"""The method interface: a small plain object whose hooks the harness loop calls, in this order:

    check(hp)                    class method: refuse hyper-parameter values it cannot run with
    setup(model, ctx)            once, before training (ctx: loaders, device; ctx.reference if needs_reference)
    param_groups(model)          what the optimizer trains ([] = nothing to train, e.g. a linear probe)
    train_mode(model)            at the start of each epoch (model.train(), or keep BN frozen)
    loss(model, batch)           named loss terms; the loop sums and logs them
    before_step(model)           after backward and gradient clipping, just before each optimizer step
    after_step(model, step)      after each optimizer step (projections, radius updates)
    finalize(model)              -> {variant name: state_dict}; every variant is evaluated

The base class is full fine-tuning, so FT is the empty subclass. Hyper-parameters: ``HPARAMS`` holds
the method's own defaults (each with its source); ``RECIPES[suite]`` overrides them per suite. Both sit on
top of the suite's recipe, whose training budget (benchmark.harness.plan.BUDGET_KEYS: optimizer, schedule,
epochs, batch size, clipping) every method shares: a method that must train otherwise declares each such
key in ``DEPARTURES`` with its source, and tables show the departure. Everything ends up in one dict,
``self.hp``, which is part of the run id.
"""
from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import update_bn

from benchmark.engine import RunContext, loader
from benchmark.errors import BenchmarkError


def is_head(name: str) -> bool:
    return name.startswith("head.")


def check_range(owner: str, key: str, value, low: float, high: float = math.inf, *, low_open: bool = False,
                high_open: bool = False) -> None:
    """Refuse `value` outside [low, high] (an end excluded if open) with one line: key, value, valid range.
    Non-numbers, NaN and infinities are refused too."""
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if numeric and (low < value if low_open else low <= value) and (value < high if high_open else value <= high):
        return
    if high == math.inf:
        valid = f"{'>' if low_open else '>='} {low:g}"
    else:
        valid = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    raise BenchmarkError(f"{owner}: {key}={value!r} is out of range; valid: {valid}")


def state_copy(model: nn.Module) -> dict:
    """The model's state dict as new tensors (a state_dict shares the model's own)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def reestimate_bn(model: nn.Module, state: dict, ctx: RunContext, images: int) -> dict:
    """`state` with its BatchNorm running statistics re-estimated on `images` shuffled training images.

    A weight average of BatchNorm networks (WiSE-FT between its ends, a soup) inherits averaged running
    statistics that belong to none of the averaged models; on the CPU proxy that alone takes WiSE-FT's
    alpha = 0.5 to 31% and the uniform soup to 10%. SWA (Izmailov et al. 2018) re-estimates them on training
    data after averaging; torch ships that as ``update_bn``. ``state`` itself is returned when ``images`` is
    0 or the model has no BatchNorm (CLIP ViTs, the papers' setting), so nothing changes there.
    """
    if not images or not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return state
    model.load_state_dict(state)
    data, batch_size = ctx.train_loader.dataset, ctx.train_loader.batch_size
    batches = loader(data, batch_size, shuffle=True, generator=torch.Generator().manual_seed(ctx.seed),
                     workers=ctx.workers)
    update_bn(itertools.islice(batches, math.ceil(images / batch_size)), model, ctx.device)
    return state_copy(model)


class Method:
    name: str  # set from the registration key by METHODS.register
    description = "full fine-tuning of every parameter"
    HPARAMS: dict = {}
    RECIPES: dict[str, dict] = {}
    # Budget keys this method sets itself instead of sharing the suite's, each with its source.
    DEPARTURES: dict[str, str] = {}
    # Methods that read ctx.reference (the frozen pretrained copy) set this; the harness makes the copy when
    # the run starts, and only for them.
    needs_reference = False
    # Methods that need the CLIP text tower (FLYP, Lipsum-FT) set this; the harness checks it.
    needs_text_tower = False
    # Suite tasks the method supports (Suite.task); the harness refuses the others with one line.
    # Segmentation targets carry -100 (F.cross_entropy's default ignore_index) for void pixels, so the
    # default loss works unchanged on (N, H, W) masks.
    tasks: tuple[str, ...] = ("classification", "segmentation")

    def __init__(self, hp: dict):
        self.check(hp)
        self.hp = hp

    @classmethod
    def check(cls, hp: dict) -> None:
        """Raise BenchmarkError for hyper-parameter values the method cannot run with. Also called when a run
        is configured (benchmark.harness.plan.resolve_hparams), so a bad value fails before any data is loaded."""

    @classmethod
    def hparams_for(cls, suite: str) -> dict:
        return {**cls.HPARAMS, **cls.RECIPES.get(suite, {})}

    def setup(self, model: nn.Module, ctx: RunContext) -> None:
        self.ctx = ctx

    def param_groups(self, model: nn.Module) -> list[dict]:
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]

    def train_mode(self, model: nn.Module) -> None:
        model.train()

    def loss(self, model: nn.Module, batch) -> dict[str, torch.Tensor]:
        x, y = batch
        return {"ce": F.cross_entropy(model(x), y)}

    def before_step(self, model: nn.Module) -> None:
        pass

    def after_step(self, model: nn.Module, step: int) -> None:
        pass

    def finalize(self, model: nn.Module) -> dict[str, dict]:
        return {self.name: model.state_dict()}

    # Method state that must survive an interruption (e.g. TPGM radii); the loop checkpoints it.
    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
