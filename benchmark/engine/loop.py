"""The one training loop: optimizer from the method's parameter groups, warm-up + cosine schedule, gradient
accumulation, gradient clipping, bf16 autocast on GPU, data parallel over processes under torchrun
(benchmark/engine/distributed.py); a checkpoint after every epoch and, if asked, every K steps or M minutes,
and one when SIGTERM or SIGUSR1 asks the run to stop; resume from any of them at the step it was written;
optionally a log of every step and epoch (benchmark/engine/runlog.py).

Batches: the recipe's batch_size is the global batch of one optimizer step, split into `accum_steps`
micro-batches on each of the processes; every method hook but ``loss`` (before_step, after_step: TPGM's
projection and radius steps, FTP's radius update) runs once per optimizer step, on the summed gradients."""
from __future__ import annotations

import math
import os
import pickle
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
from tqdm import tqdm

from benchmark.engine import distributed
from benchmark.engine.distributed import StepSampler
from benchmark.errors import BenchmarkError
from benchmark.engine.loaders import autocast, loader
from benchmark.engine.runlog import NO_LOG, RunLog
from benchmark.files import atomic_writer

OPTIMIZERS = ("sgd", "adamw")
# sysexits.h EX_TEMPFAIL ("try again later"): what a requeueing job script tests for after a stop signal.
EXIT_PREEMPTED = 75
# A cluster's preemption (SIGTERM; torchrun forwards it to its workers) and its time-limit warning (SLURM
# --signal=USR1@<seconds>; torchrun forwards it with --signals-to-handle ...,SIGUSR1).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


@dataclass(frozen=True)
class CheckpointEvery:
    """Checkpoints besides the one per epoch: every `steps` optimizer steps, every `minutes` (0 = never). How a
    run is carried out, not what it computes, so not a hyper-parameter (a run's id and results do not depend on
    it): `run` and `sweep` take it as --ckpt-every-steps and --ckpt-every-minutes."""

    steps: int = 0
    minutes: float = 0.0


@dataclass
class Fitted:
    curves: dict  # per-epoch means of every loss term
    images: int  # images trained on by this attempt (all processes; a resumed run counts from its checkpoint)
    seconds: float  # the time it took


class Preempted(SystemExit):
    """A stop signal's checkpoint is written; uncaught, the process exits with EXIT_PREEMPTED."""

    def __init__(self):
        super().__init__(EXIT_PREEMPTED)


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


@contextmanager
def stop_signals():
    """While training, SIGTERM and SIGUSR1 only note that the run should stop (the loop does, at the next step
    boundary, after a checkpoint). Yields the list of the names of those received."""
    received: list[str] = []
    previous = {s: signal.signal(s, lambda signum, frame: received.append(signal.Signals(signum).name))
                for s in STOP_SIGNALS}  # fmt: skip
    try:
        yield received
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def take(batches, images: int):
    """Micro-batches from `batches` until `images` images have come: this process's share of one step."""
    while images > 0:
        x, y = next(batches)
        images -= len(y)
        yield x, y


def accumulate(model, method, micro_batches, images: int, device) -> dict[str, torch.Tensor]:
    """Forward and backward passes over this process's micro-batches of one optimizer step of `images` images in
    all (every process together). Each micro-batch's loss is weighted by its share of those images, so the
    gradients summed over micro-batches and processes are the whole step batch's (exactly so for losses that
    are means over images; a term that does not depend on the batch, like L2-SP's, counts once). Returns the
    loss terms weighted alike; {} for an empty share."""
    terms: dict[str, torch.Tensor] = {}
    for x, y in micro_batches:
        batch = (x.to(device, non_blocking=True), y.to(device, non_blocking=True))
        with autocast(device):
            parts = method.loss(model, batch)
        weight = len(y) / images
        (sum(parts.values()) * weight).backward()
        for k, v in parts.items():
            terms[k] = terms.get(k, 0.0) + v.detach().float() * weight
    return terms


def synchronize(terms: dict, names: list[str], device) -> dict:
    """The step's loss terms summed over processes (a process with an empty share adds zeros for `names`)."""
    if distributed.world_size() == 1:
        return terms
    zero = torch.zeros((), device=device)
    return dict(zip(names, distributed.all_sum(torch.stack([terms.get(k, zero) for k in names]))))


def rng_state(device) -> dict:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(states: list[dict], device) -> None:
    """This process's random streams as saved. Saved by another number of processes, there is no such stream:
    each keeps the one it has (the run continues correctly, but its random draws differ from an uninterrupted one)."""
    if len(states) != distributed.world_size():
        say(f"checkpoint written by {len(states)} process(es), resumed on {distributed.world_size()}: random draws "
            f"(augmentation, FSR's mixes) differ from an uninterrupted run's from here on")  # fmt: skip
        return
    mine = states[distributed.rank()]
    torch.set_rng_state(mine["cpu"])
    if "cuda" in mine and device.type == "cuda":
        torch.cuda.set_rng_state(mine["cuda"], device)


def say(line: str) -> None:
    if distributed.is_main():
        tqdm.write(line)


# What Saver writes; a checkpoint without one of these was written by an older version of the loop.
CHECKPOINT_KEYS = ("model", "optimizer", "schedule", "method", "epoch", "batches", "curves", "sums", "rng")


def shapes(weights) -> dict:
    return {k: getattr(v, "shape", None) for k, v in weights.items()} if isinstance(weights, dict) else {}


def unknown_format(state, model) -> str | None:
    """Why `state` cannot be resumed by this code (an older loop's checkpoint, another model's weights), or None.
    Checked before anything is loaded: a failed load_state_dict would leave the model half overwritten."""
    if not isinstance(state, dict):
        return f"a {type(state).__name__}, not a dict"
    missing = [key for key in CHECKPOINT_KEYS if key not in state]
    if missing:
        return f"no {', '.join(missing)}"
    if not isinstance(state["rng"], list):
        return "one random state, not one per process"
    if shapes(state["model"]) != shapes(model.state_dict()):
        return "weights that do not fit this model"
    return None


def resume(path: Path, device, model) -> dict | None:
    """The checkpoint at `path` on every process, or None: rank 0 reads it first (moving a damaged one, or one in
    a format this code cannot resume, aside), so that all processes resume or all start afresh."""
    state = load_checkpoint(path, device) if distributed.is_main() and path.is_file() else None
    why = unknown_format(state, model) if state is not None else None
    if why:
        state = set_aside(path, f"is in an old or unknown format ({why})", "stale")
    if not distributed.any_flag(state is not None)[0]:
        return None
    return state if distributed.is_main() else torch.load(path, map_location=device, weights_only=True)


class Saver:
    """Writes the run's checkpoint: everything a resume needs to continue exactly at a step boundary. The model,
    optimizer, schedule and method state are the same on every process; the random streams are each process's."""

    def __init__(self, path: Path, model, method, optimizer, schedule, device, steps_per_epoch: int):
        self.path, self.model, self.method, self.optimizer, self.schedule = path, model, method, optimizer, schedule
        self.device, self.steps_per_epoch = device, steps_per_epoch
        self.last = time.monotonic()

    def minutes_due(self, every: CheckpointEvery) -> bool:
        return bool(every.minutes) and time.monotonic() - self.last >= every.minutes * 60

    def save(self, epoch: int, done: int, curves: dict, sums: dict) -> None:
        """After `done` steps of epoch `epoch` (0-based); a finished epoch is saved as the next one's start."""
        if done == self.steps_per_epoch:
            epoch, done, sums = epoch + 1, 0, {}
        rngs = distributed.all_objects(rng_state(self.device))
        if distributed.is_main():
            save_checkpoint(self.path, {
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(), "method": self.method.state_dict(), "epoch": epoch,
                "batches": done, "curves": curves, "sums": sums, "rng": rngs,
            })  # fmt: skip
        distributed.barrier()  # nobody leaves (a stop signal's exit) before the file is whole
        self.last = time.monotonic()


def fit(model, method, ctx, hp: dict, train_set, checkpoint: Path, progress: bool = True, log: RunLog = NO_LOG,
        every: CheckpointEvery = CheckpointEvery()) -> Fitted:  # fmt: skip
    """Train `model` in place with `method`; returns per-epoch curves and the images/s reached. Resumes from
    `checkpoint` at the step it was written. `log` sees every step and epoch end, a resumed run's continuing
    after the checkpoint's last step. A stop signal writes a checkpoint at the next step boundary and raises
    Preempted."""
    groups = [g for g in method.param_groups(model) if g["params"]]
    if not groups:
        return Fitted({}, 0, 0.0)
    n, world = len(train_set), distributed.world_size()
    if n < world:
        raise BenchmarkError(f"{n} training images cannot be shared by {world} processes")
    micro = distributed.per_device_batch(hp["batch_size"], hp.get("accum_steps", 1))
    epochs, device = hp["epochs"], ctx.device
    steps_per_epoch = math.ceil(n / hp["batch_size"])
    total = epochs * steps_per_epoch
    optimizer = make_optimizer(groups, hp)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, total, hp.get("warmup_steps", 0)))
    start_epoch, done, curves, sums = 0, 0, {}, {}
    state = resume(checkpoint, device, model)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        method.load_state_dict(state["method"])
        start_epoch, done, curves, sums = state["epoch"], state["batches"], state["curves"], state["sums"]
        restore_rng(state["rng"], device)
        where = f"in epoch {start_epoch + 1} after step {done}/{steps_per_epoch}" if done else f"after epoch {start_epoch}"
        say(f"resuming {checkpoint.stem} {where}")
    log.begin(start_epoch * steps_per_epoch + done)
    params = [p for g in groups for p in g["params"]]
    saver = Saver(checkpoint, model, method, optimizer, schedule, device, steps_per_epoch)
    started, images = time.perf_counter(), 0
    # One loader for every epoch, so that its workers persist; each epoch sets its sampler's order and reseeds
    # its generator, which no longer shuffles but keys the epoch's augmentation (benchmark/engine/loaders.py).
    sampler, keys = StepSampler(n, hp["batch_size"], epoch_generator(ctx.seed, start_epoch)), torch.Generator()
    train = loader(train_set, micro, sampler=sampler, generator=keys, workers=ctx.workers, persistent=True)
    with stop_signals() as received:
        for epoch in range(start_epoch, epochs):
            method.train_mode(model)
            sampler.set_epoch(epoch_generator(ctx.seed, epoch), start=done)
            keys.set_state(epoch_generator(ctx.seed, epoch).get_state())
            batches = iter(train)
            sums = sums if done else {}
            bar = tqdm(total=steps_per_epoch, initial=done, desc=f"{method.name} epoch {epoch + 1}/{epochs}", unit="step",
                       leave=False, disable=not progress)  # fmt: skip
            for i in sampler.steps():
                step = epoch * steps_per_epoch + i
                optimizer.zero_grad(set_to_none=True)
                size = sampler.step_size(i)
                terms = accumulate(model, method, take(batches, len(sampler.share(i))), size, device)
                terms = synchronize(terms, list(terms or sums), device)
                loss = sum(terms.values())
                if not torch.isfinite(loss):
                    detail = ", ".join(f"{k}={v.item():.4g}" for k, v in terms.items())
                    raise BenchmarkError(f"{method.name}: non-finite loss at epoch {epoch + 1} step {i + 1} ({detail}); try a lower --lr")
                distributed.sum_gradients(params)
                if hp.get("grad_clip"):
                    torch.nn.utils.clip_grad_norm_(params, hp["grad_clip"])
                method.before_step(model)
                optimizer.step()
                distributed.broadcast_batchnorm_stats(model)
                log.step(step + 1, terms, optimizer)  # the learning rates this step used, before the schedule moves
                schedule.step()
                method.after_step(model, step)
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + v.item()
                images += size
                bar.update()
                bar.set_postfix(loss=f"{loss.item():.3f}")
                done = i + 1
                if done == steps_per_epoch:
                    for k, v in sums.items():
                        curves.setdefault(f"train_{k}", []).append(v / steps_per_epoch)
                    log.epoch((epoch + 1) * steps_per_epoch, curves)
                # Agreed by every process (a signal may reach one only; clocks differ).
                stop, minutes_due = distributed.any_flag(bool(received), saver.minutes_due(every))
                steps_due = bool(every.steps) and (step + 1) % every.steps == 0
                if done == steps_per_epoch or stop or steps_due or minutes_due:
                    saver.save(epoch, done, curves, sums)
                if stop:
                    stopped(received, checkpoint, epoch, done, steps_per_epoch)
            bar.close()
            done = 0
    return Fitted(curves, images, time.perf_counter() - started)


def stopped(received: list[str], checkpoint: Path, epoch: int, done: int, steps_per_epoch: int):
    """One line for the job log, then exit EXIT_PREEMPTED: running the same command again resumes."""
    if distributed.is_main():
        what = received[0] if received else "a stop signal (on another process)"
        print(f"stopped by {what} in epoch {epoch + 1} after step {done}/{steps_per_epoch}; checkpoint {checkpoint} "
              f"written: run the same command again to resume (exit {EXIT_PREEMPTED})", file=sys.stderr, flush=True)  # fmt: skip
    raise Preempted()


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
    return set_aside(path, why, "damaged")


def set_aside(path: Path, why: str, tag: str) -> None:
    """Rename the checkpoint at `path` to <name>.<tag>-<UTC time> (kept, never deleted) and say so in one line."""
    aside = path.with_name(f"{path.name}.{tag}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S%fZ}")
    os.replace(path, aside)
    tqdm.write(f"checkpoint {path} {why}; moved to {aside.name}, training restarts from epoch 1")
