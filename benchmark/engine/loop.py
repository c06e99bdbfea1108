"""The one training loop: optimizer from the method's parameter groups, warm-up + cosine schedule,
gradient clipping, bf16 autocast on GPU, a checkpoint after every epoch, resume from it; optionally a log
of every step and epoch (benchmark/engine/runlog.py)."""
from __future__ import annotations

import math
import os
import pickle
from datetime import datetime, timezone
from pathlib import Path

import torch
from tqdm import tqdm

from benchmark.errors import BenchmarkError
from benchmark.engine.loaders import autocast, loader
from benchmark.engine.runlog import NO_LOG, RunLog
from benchmark.files import atomic_writer

OPTIMIZERS = ("sgd", "adamw")


def make_optimizer(groups: list[dict], hp: dict) -> torch.optim.Optimizer:
    if hp["optimizer"] == "sgd":
        return torch.optim.SGD(groups, lr=hp["lr"], momentum=hp.get("momentum", 0.9),
                               weight_decay=hp["weight_decay"], nesterov=hp.get("nesterov", False))  # fmt: skip
    if hp["optimizer"] == "adamw":
        return torch.optim.AdamW(groups, lr=hp["lr"], weight_decay=hp["weight_decay"])
    raise BenchmarkError(f"unknown optimizer {hp['optimizer']!r}; valid: {', '.join(OPTIMIZERS)}")


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    """LR multiplier: linear warm-up to 1 over `warmup` steps, then cosine decay to 0 at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    # Shuffling depends only on (seed, epoch), so a resumed run sees exactly the batches it would have.
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def fit(model, method, ctx, hp: dict, train_set, checkpoint: Path, progress: bool = True, log: RunLog = NO_LOG) -> dict:
    """Train `model` in place with `method`; returns per-epoch curves. Resumes from `checkpoint`. `log` sees
    every step and epoch end, a resumed run's continuing after the checkpoint's last step."""
    groups = [g for g in method.param_groups(model) if g["params"]]
    curves: dict[str, list] = {}
    if not groups:
        return curves
    epochs, device = hp["epochs"], ctx.device
    steps_per_epoch = math.ceil(len(train_set) / hp["batch_size"])
    total = epochs * steps_per_epoch
    optimizer = make_optimizer(groups, hp)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, total, hp.get("warmup_steps", 0)))
    start_epoch = 0
    state = load_checkpoint(checkpoint, device) if checkpoint.is_file() else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        method.load_state_dict(state["method"])
        start_epoch, curves = state["epoch"], state["curves"]
        torch.set_rng_state(state["rng"])
        tqdm.write(f"resuming {checkpoint.stem} after epoch {start_epoch}")
    log.begin(start_epoch * steps_per_epoch)
    params = [p for g in groups for p in g["params"]]
    for epoch in range(start_epoch, epochs):
        method.train_mode(model)
        sums: dict[str, float] = {}
        batches = loader(train_set, hp["batch_size"], shuffle=True, generator=epoch_generator(ctx.seed, epoch))
        bar = tqdm(batches, desc=f"{method.name} epoch {epoch + 1}/{epochs}", unit="batch", leave=False, disable=not progress)
        for i, (x, y) in enumerate(bar):
            step = epoch * steps_per_epoch + i
            batch = (x.to(device, non_blocking=True), y.to(device, non_blocking=True))
            with autocast(device):
                terms = method.loss(model, batch)
            loss = sum(terms.values())
            if not torch.isfinite(loss):
                detail = ", ".join(f"{k}={v.item():.4g}" for k, v in terms.items())
                raise BenchmarkError(f"{method.name}: non-finite loss at epoch {epoch + 1} step {i + 1} ({detail}); try a lower --lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if hp.get("grad_clip"):
                torch.nn.utils.clip_grad_norm_(params, hp["grad_clip"])
            method.before_step(model)
            optimizer.step()
            log.step(step + 1, terms, optimizer)  # the learning rates this step used, before the schedule moves
            schedule.step()
            method.after_step(model, step)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v.item()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        for k, v in sums.items():
            curves.setdefault(f"train_{k}", []).append(v / steps_per_epoch)
        log.epoch((epoch + 1) * steps_per_epoch, curves)
        save_checkpoint(checkpoint, {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
            "method": method.state_dict(), "epoch": epoch + 1, "curves": curves, "rng": torch.get_rng_state(),
        })  # fmt: skip
    return curves


def save_checkpoint(path: Path, state: dict) -> None:
    # Fsynced before the rename: a crash or a full disk leaves the previous checkpoint, never half of one.
    with atomic_writer(path) as f:
        torch.save(state, f)


def load_checkpoint(path: Path, device) -> dict | None:
    """The state saved at `path`, or None when the file is damaged or holds more than tensors, containers and
    numbers: it is then moved aside (kept, never deleted), named in one line, and training starts afresh
    (the one checkpoint is the only saved state, and rerunning from scratch costs time, not results)."""
    try:
        # weights_only: a planted pickle (e.g. a __reduce__ payload) is refused instead of executed.
        return torch.load(path, map_location=device, weights_only=True)
    except OSError as e:  # unreadable (permissions, I/O): not evidence of damage, so the file stays
        raise BenchmarkError(f"cannot read checkpoint {path}: {e.strerror or e}") from None
    except pickle.UnpicklingError:
        why = "refused (it holds objects other than tensors, containers and numbers, or is garbled; none of it was run)"
    except Exception as e:  # truncated or empty (crash or full disk while saving), or otherwise garbled
        why = f"damaged ({type(e).__name__}: {str(e).split('. ')[0] or 'no data'})"
    aside = path.with_name(f"{path.name}.damaged-{datetime.now(timezone.utc):%Y%m%dT%H%M%S%fZ}")
    os.replace(path, aside)
    tqdm.write(f"checkpoint {path} {why}; moved to {aside.name}, training restarts from epoch 1")
    return None
