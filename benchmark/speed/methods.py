"""`benchmark bench methods`: what each method costs on top of plain fine-tuning, measured side by side.

- Per-step cost: one training step (loss + backward + before_step + optimizer step + after_step) of every
  registered method that trains, on the same backbone and batch (lite0 at 64 px, random init: same cost as
  the pretrained weights; a batch of 32 random images; torch threads as set), as a ratio to FT's step time
  in the same run. TPGM is also timed with its DomainNet recipe (a radius update after every step), the
  configuration the paper's cost claim is about.
- Post-hoc cost: WiSE-FT's finalize (the interpolations, without and with the BatchNorm re-estimation of
  alpha = 0.5; not the evaluation of its variants) and TPGM's post-hoc projection (200 radius iterations +
  one projection), each as a fraction of a fine-tuning run computed from the FT step time: the fmnist-c
  default run (2 epochs x 63 steps) and, for TPGM's post-hoc recipe, the ImageNet one it was designed for
  (10 epochs x 2503 steps of 512 images, radius batches of the same size, so the per-step ratio carries
  over).
- Bookkeeping memory: bytes of tensors the method (and the shared ctx.reference) holds beyond the model's
  own, in units of the model's size. One copy (the frozen reference) is the budget.
"""
from __future__ import annotations

import copy
import functools
import itertools
import math
import time

import torch
from torch.utils.data import TensorDataset

from benchmark.engine import RunContext, frozen_copy, loader, make_optimizer
from benchmark.errors import BenchmarkError
from benchmark.harness.plan import resolve_hparams
from benchmark.speed import SECTIONS
from benchmark.speed import best_time as wall_best_time
from methods import METHODS
from methods.tpgm import RadiusProjection

SUITE = "fmnist-c"
FMNIST_STEPS = 2 * math.ceil(2000 / 32)  # the default run: 2 epochs of 2000 images, batch 32 (benchmark/data/fmnist.py)
IMAGENET_STEPS = 10 * math.ceil(1_281_167 / 512)  # WiSE-FT CLIP recipe: 10 epochs, batch 512
TARGETS = {"tpgm@domainnet": 2.2}  # per-step ratio to FT (issue 5)
POSTHOC_TARGET = 1.05  # whole run with the post-hoc step, relative to the FT run (issue 5)
# CPU seconds of this process: on a shared machine they move less with other load than wall time does.
best_time = functools.partial(wall_best_time, clock=time.process_time)


def random_batches(n: int, batch: int, image_size: int, num_classes: int) -> list:
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(batch, 3, image_size, image_size, generator=g), torch.randint(0, num_classes, (batch,), generator=g))
            for _ in range(n)]  # fmt: skip


def held_bytes(obj, skip: set[int], seen: set[int] | None = None) -> int:
    """Bytes of tensor storages reachable from obj (dicts, sequences, modules, optimizers, plain objects),
    not counting storages whose data pointer is in `skip` (the model's own tensors)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        storage = obj.untyped_storage()
        if storage.data_ptr() in skip:
            return 0
        skip.add(storage.data_ptr())
        return storage.nbytes()
    if isinstance(obj, torch.nn.Module):
        children = list(obj.parameters()) + list(obj.buffers())
    elif isinstance(obj, torch.optim.Optimizer):
        children = [obj.state, obj.param_groups]
    elif isinstance(obj, dict):
        children = list(obj.values())
    elif isinstance(obj, (list, tuple, set)):
        children = list(obj)
    elif hasattr(obj, "__dict__") and not isinstance(obj, type):
        children = list(vars(obj).values())
    else:
        return 0
    return sum(held_bytes(c, skip, seen) for c in children)


def model_bytes(model) -> int:
    return sum(t.untyped_storage().nbytes() for t in itertools.chain(model.parameters(), model.buffers()))


def extra_copies(method, ctx, model) -> float:
    skip = {t.untyped_storage().data_ptr() for t in itertools.chain(model.parameters(), model.buffers())}
    state = {k: v for k, v in vars(method).items() if k != "ctx"}  # ctx also holds the loaders and the model
    borrowed = {id(ctx.train_loader), id(ctx.selection_loader)}  # the run's data, which a method may hold a handle to
    held = held_bytes([state, ctx.reference], skip, seen=borrowed)
    return held / model_bytes(model)


def random_train_loader(batches: list):
    """Random training images, as many as WiSE-FT's and soups' BatchNorm re-estimation reads, in batches
    shaped like `batches`."""
    (x, y), size = batches[0], METHODS.get("wise-ft").HPARAMS["bn_reestimate_images"]
    images = torch.randn(size, *x.shape[1:], generator=torch.Generator().manual_seed(1))
    return loader(TensorDataset(images, y.repeat(size // len(y) + 1)[:size]), len(y))


def build(name: str, suite: str, base, batches, train_data, num_classes):
    """A fresh copy of the base model and the method set up on it, with a context of random batches."""
    cls = METHODS.get(name)
    model = copy.deepcopy(base)
    hp = resolve_hparams(suite, cls, {})
    ctx = RunContext(train_loader=train_data, selection_loader=batches, device=torch.device("cpu"),
                     num_classes=num_classes, suite=suite, seed=0, progress=False,
                     reference=frozen_copy(model) if cls.needs_reference else None,
                     # random, as the weights are, at the size of Lite0's ImageNet head: FSR's distance reads it
                     pretraining_head=torch.nn.Linear(base.head.in_features, 1000).requires_grad_(False))  # fmt: skip
    method = cls(hp)
    method.setup(model, ctx)
    return method, model, ctx, hp


def trainer(method, model, hp, batch, steps: int):
    """A closure running `steps` training steps of the method (None if it trains nothing), warmed up."""
    groups = [g for g in method.param_groups(model) if g["params"]]
    if not groups:
        return None
    optimizer = make_optimizer(groups, hp)
    method.train_mode(model)
    counter = itertools.count()

    def train():
        for _ in range(steps):
            loss = sum(method.loss(model, batch).values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            method.before_step(model)
            optimizer.step()
            method.after_step(model, next(counter))

    train()  # warm-up (and first-call initialisation, e.g. TPGM's radii)
    return train


def measure(base, image_size: int, batch_size: int, num_classes: int, quick: bool, names=None) -> list[str]:
    steps, repeats = (2, 2) if quick else (6, 3)  # even step counts: TPGM's fmnist-c radius update is every 2nd
    batches = random_batches(2, batch_size, image_size, num_classes)
    train_data = random_train_loader(batches)
    others = [n for n in (names or METHODS.names()) if n != "ft"]
    rows = [(n, n, SUITE) for n in others] + [("tpgm@domainnet", "tpgm", "domainnet")]
    lines = [f"{batch_size} random {image_size}-px images a step, {torch.get_num_threads()} torch threads, "
             f"best of {repeats} x {steps} steps in CPU seconds, each method timed alternately with FT (ratio to FT's best)"]  # fmt: skip
    ft_method, ft_model, ft_ctx, ft_hp = build("ft", SUITE, base, batches, train_data, num_classes)
    ft_train = trainer(ft_method, ft_model, ft_hp, batches[0], steps)
    ft_times = [best_time(ft_train, repeats) / steps]
    ft_line = len(lines)  # filled in once FT's best time over the whole run is known
    kept = {}
    for label, name, suite in rows:
        if METHODS.get(name).needs_text_tower:
            lines.append(f"  {label:<16} skipped (needs a CLIP text tower)")
            continue
        try:
            method, model, ctx, hp = build(name, suite, base, batches, train_data, num_classes)
        except BenchmarkError as e:  # a method that needs another backbone (e.g. a zero-shot head)
            lines.append(f"  {label:<16} skipped ({e})")
            continue
        train = trainer(method, model, hp, batches[0], steps)
        copies = extra_copies(method, ctx, model)
        flag = "  OVER the one-copy budget" if copies > 1.1 else ""  # radii, Adam state: small change
        if train is None:
            lines.append(f"  {label:<16} trains nothing; extra model copies held {copies:.2f}{flag}")
            continue
        t = math.inf
        for _ in range(repeats):  # alternate, so a change in machine load hits both sides
            ft_times.append(best_time(ft_train, 1) / steps)
            t = min(t, best_time(train, 1) / steps)
        ratio = t / min(ft_times)
        target = f"  (target <= {TARGETS[label]}x: {'ok' if ratio <= TARGETS[label] else 'MISSED'})" if label in TARGETS else ""
        lines.append(f"  {label:<16} {ratio:5.2f}x  {t * 1000:7.1f} ms/step  extra model copies held {copies:.2f}{flag}{target}")
        if name in ("wise-ft", "tpgm") and suite == SUITE:
            kept[name] = (method, model, ctx)
    ft = min(ft_times)
    lines.insert(ft_line, f"  {'ft':<16}  1.00x  {ft * 1000:7.1f} ms/step  extra model copies held "
                          f"{extra_copies(ft_method, ft_ctx, ft_model):.2f}")  # fmt: skip
    if "wise-ft" in kept:
        method, model, _ = kept["wise-ft"]
        images = method.hp["bn_reestimate_images"]
        for label, n in (("interpolation only", 0), (f"+ BN re-estimation on {images} images", images)):
            method.hp = {**method.hp, "bn_reestimate_images": n}
            t = best_time(lambda: method.finalize(model), repeats)
            run = 1 + t / (ft * FMNIST_STEPS)
            lines.append(f"  wise-ft finalize ({len(method.hp['alphas'])} alphas, {label}): {t * 1000:.1f} ms; fmnist-c "
                         f"run x{run:.4f} (target <= {POSTHOC_TARGET}: {'ok' if run <= POSTHOC_TARGET else 'MISSED'}; "
                         f"evaluating the variants is not counted)")  # fmt: skip
    if "tpgm" in kept:
        method, model, ctx = kept["tpgm"]
        iters = METHODS.get("tpgm").hparams_for("imagenet")["posthoc_iters"]
        names_all = method.projected_names(model, exclude_head=False)
        proj = RadiusProjection(names_all, "l2", method.hp["radius_lr"], ctx.device)
        t_iter = best_time(lambda: [proj.radius_step(model, method.reference, batches[1]) for _ in range(steps)], repeats) / steps
        t_apply = best_time(lambda: proj.apply(model, method.reference), repeats)
        posthoc = iters * t_iter + t_apply
        for run, n in (("fmnist-c default", FMNIST_STEPS), ("ImageNet recipe", IMAGENET_STEPS)):
            ratio = 1 + posthoc / (ft * n)
            lines.append(f"  tpgm post-hoc ({iters} iters, {t_iter / ft:.2f}x an FT step each) vs the {run} FT run "
                         f"({n} steps): x{ratio:.3f} (target <= {POSTHOC_TARGET}: {'ok' if ratio <= POSTHOC_TARGET else 'MISSED'})")  # fmt: skip
    return lines


@SECTIONS.register("methods")
def methods_section(quick: bool) -> list[str]:
    from benchmark.models import create_backbone

    classes = [str(i) for i in range(10)]
    # channels_last as in benchmark/harness/run.py
    base = create_backbone("lite0", classes, 64, pretrained=False).model.to(memory_format=torch.channels_last)
    return ["lite0 (random init, same cost as pretrained)"] + measure(base, 64, 32, len(classes), quick)
