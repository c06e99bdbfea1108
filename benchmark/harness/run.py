"""One run = (suite, method, backbone, seed, hparams): build, fit, finalize, evaluate every variant, record."""
from __future__ import annotations

import itertools
import resource
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from benchmark.data import SUITES, SuiteOptions, build_suite
from benchmark.data.base import Suite, data_fingerprint
from benchmark.engine import RunContext, default_device, distributed, evaluate, fit, frozen_copy, loader
from benchmark.engine.loop import CheckpointEvery
from benchmark.engine.runlog import open_log, require
from benchmark.errors import BenchmarkError
from benchmark.harness import lock
from benchmark.harness.plan import PlannedRun, RunConfig
from benchmark.models import backbone_transforms, create_backbone
from benchmark.report import records
from methods import METHODS


@dataclass
class Outcome:
    run_id: str
    path: Path
    status: str  # "done" (ran now), "superseded" (ran now, the old record moved aside) or "skipped" (exists)
    record: dict


def prepare_suite(cfg: RunConfig, data_root, progress=True, workers=2) -> Suite:
    """Build the suite with the backbone's own preprocessing (known without loading the backbone)."""
    train_tf, eval_tf = backbone_transforms(cfg.backbone, cfg.image_size)
    options = SuiteOptions(data_root=data_root, train_transform=train_tf, eval_transform=eval_tf,
                           sizes=cfg.sizes, workers=workers, progress=progress)  # fmt: skip
    return build_suite(cfg.suite, options)


def non_finite(tensor: torch.Tensor) -> bool:
    return tensor.is_floating_point() and not torch.isfinite(tensor).all()


def check_finite(method: str, where: str, tensors, exempt: set) -> None:
    """Refuse NaN/Inf in named tensors, except those in `exempt`. The loop checks only the loss, before each
    step: a last step, a closed-form fit, a projection or an average that breaks the weights would otherwise
    be evaluated at chance and recorded as done."""
    for name, tensor in tensors:
        if name not in exempt and non_finite(tensor):
            raise BenchmarkError(f"{method}: non-finite values {where} (first: {name}); no record written")


def sources_fingerprint(cfg: RunConfig, data_root) -> str | None:
    """A stat-only fingerprint (names below their common folder, sizes) of the files a build of the suite reads
    first (SuiteSpec.needs), taken without building it; None where that is not telling: the suite does not say
    what it reads, some is missing, or it reads folders (whose stat says nothing of what they hold)."""
    spec = SUITES.get(cfg.suite)
    try:
        found = [] if spec.needs is None else [find(data_root) for _, find in sorted(spec.needs(cfg.sizes).items())]
    except BenchmarkError:
        return None
    files = [p for f in found for p in (sorted(f.values()) if isinstance(f, dict) else [f])]
    if not files or not all(isinstance(p, Path) and p.is_file() for p in files):
        return None
    return data_fingerprint(files)


def recorded_from(group: list[PlannedRun], results: Path, sources: str | None) -> list[dict] | None:
    """The records of every run of `group` when each exists and was made from source files that fingerprint as
    `sources` (the ones found now); else None."""
    if sources is None:
        return None
    paths = [records.record_path(results, r.config.suite, r.config.run_id) for r in group]
    if not all(path.exists() for path in paths):
        return None
    kept = [records.read_record(path) for path in paths]
    return kept if all(record.get("sources") == sources for record in kept) else None


def existing_record(cfg: RunConfig, suite: Suite, results: Path) -> dict | None:
    """The record of this config, if one exists and was made from this copy of the data; one made from other
    data is an error, never a skip (its numbers are not this data's)."""
    path = records.record_path(results, cfg.suite, cfg.run_id)
    if not path.exists():
        return None
    record = records.read_record(path)
    if record.get("data") != suite.fingerprint:
        raise BenchmarkError(f"{path} was made from other data (fingerprint {record.get('data') or 'none'}; this copy: "
                             f"{suite.fingerprint}): --rerun replaces it (the old record moves to superseded/), "
                             f"or give another --results")  # fmt: skip
    return record


def device_name(dev: torch.device) -> str:
    return torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"


def peak_memory(dev: torch.device) -> int:
    """Bytes: the GPU's peak allocated by torch during this run, or on CPU the process's peak resident size."""
    if dev.type == "cuda":
        return torch.cuda.max_memory_allocated(dev)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def images_per_s(images: int, seconds: float) -> float | None:
    return round(images / seconds, 1) if images and seconds else None


def execute(cfg: RunConfig, suite: Suite, results: Path, progress: bool = True, departures: dict | None = None,
            rerun: bool = False, log: str | None = None, every: CheckpointEvery = CheckpointEvery(),
            workers: int = 0, sources: str | None = None) -> Outcome:
    """Run one config unless its record exists (with rerun: run it again and supersede that record); resumes
    from a checkpoint left by an interrupted run. `departures`: the plan's budget departures, recorded. `log`:
    'tensorboard' also logs training under <results>/tensorboard/<suite>/<run id>/ (benchmark/engine/runlog.py).
    `every`: checkpoints besides the per-epoch one. `workers`: worker processes of every loader of the run.
    `sources`: sources_fingerprint of what the suite was built from, recorded so that a later request can skip
    this run without building the suite.

    Under torchrun (benchmark/engine/distributed.py) every process runs this; rank 0 alone shows progress and
    writes the log, checkpoints and the record, which the others wait for."""
    distributed.init_from_env()
    progress = progress and distributed.is_main()
    run_id = cfg.run_id
    path = records.record_path(results, cfg.suite, run_id)
    supersede = path.exists()
    if supersede and not rerun:
        return Outcome(run_id, path, "skipped", existing_record(cfg, suite, results))
    method_cls = METHODS.get(cfg.method)
    if suite.task not in method_cls.tasks:
        raise BenchmarkError(f"method {cfg.method} supports {'/'.join(method_cls.tasks)} suites only; {cfg.suite} is a {suite.task} suite")
    started = time.time()
    torch.manual_seed(cfg.seed)
    built = create_backbone(cfg.backbone, suite.classnames, cfg.image_size, cfg.pretrained, suite.templates)
    if method_cls.needs_text_tower and "text" not in built.extras:
        raise BenchmarkError(f"method {cfg.method} needs a CLIP text tower; backbone {cfg.backbone} has none (use clip:...)")
    dev = distributed.device(default_device())
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)  # this run's peak, not an earlier run's in the same process
    # channels_last: ~1.7x faster CNN training and eval on CPU (measured on Lite0), no effect on 2-D weights.
    model = built.model.to(dev, memory_format=torch.channels_last)
    distributed.broadcast_state(model)
    # Buffers that are non-finite by design (CLIP's causal attention mask is -inf above the diagonal).
    exempt = {name for name, buffer in model.named_buffers() if non_finite(buffer)}
    hp = cfg.hparams
    ctx = RunContext(train_loader=loader(suite.train, hp["eval_batch_size"], workers=workers),
                     selection_loader=loader(suite.selection, hp["batch_size"], shuffle=True,
                                             generator=torch.Generator().manual_seed(cfg.seed), workers=workers),
                     device=dev, num_classes=suite.num_classes, suite=cfg.suite, seed=cfg.seed,
                     extras=built.extras, head_is_pretrained=built.head_is_pretrained,
                     checkpoint=path.with_suffix(".ckpt.pt"), progress=progress,
                     reference=frozen_copy(model) if method_cls.needs_reference else None, workers=workers,
                     pretraining_head=None if built.pretraining_head is None else built.pretraining_head.to(dev))  # fmt: skip
    method = method_cls(hp)
    method.setup(model, ctx)
    distributed.seed_ranks(cfg.seed)
    checkpoint = ctx.checkpoint
    run_log = open_log(log if distributed.is_main() else None, Path(results) / "tensorboard" / cfg.suite / run_id)
    fitted = fit(model, method, ctx, hp, suite.train, checkpoint, progress, run_log, every)
    # The checkpoint stays when a check fails, for a look at what went wrong.
    check_finite(cfg.method, "after training", itertools.chain(model.named_parameters(), model.named_buffers()), exempt)
    variants = method.finalize(model)
    for variant, state in variants.items():  # all before any is evaluated: evaluation is the slow part
        check_finite(cfg.method, f"in variant {variant}", state.items(), exempt)
    rows = []
    eval_started = time.perf_counter()
    for variant, state in variants.items():
        model.load_state_dict(state)
        for row in evaluate(model, suite.all_evals(), dev, hp["eval_batch_size"], desc=f"eval {variant}", progress=progress,
                            workers=workers):  # fmt: skip
            rows.append({"variant": variant, **row})
    eval_images = len(variants) * sum(len(e.dataset) for e in suite.all_evals())
    eval_s = time.perf_counter() - eval_started
    run_log.evals(rows)
    run_log.close()
    record = {
        "run_id": run_id, "config": cfg.to_dict(), "seed": cfg.seed, "data": suite.fingerprint,
        "sources": sources, "departures": departures or {},
        "code": records.code_identity(), "versions": records.library_versions(), "device": str(dev), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_s": round(time.time() - started, 2), "suite_notes": suite.notes, "evals": rows, "curves": fitted.curves,
        "world_size": distributed.world_size(), "accum_steps": hp.get("accum_steps", 1),
        "devices": distributed.all_objects(device_name(dev)),
        "train_images_per_s": images_per_s(fitted.images, fitted.seconds), "eval_images_per_s": images_per_s(eval_images, eval_s),
        "peak_memory": {"bytes": distributed.all_objects(peak_memory(dev)),
                        "of": "torch.cuda.max_memory_allocated" if dev.type == "cuda" else "peak resident set size (getrusage)"},
    }  # fmt: skip
    written = path
    if distributed.is_main():
        written = records.write_record(results, record, supersede=supersede)
        checkpoint.unlink(missing_ok=True)
    distributed.barrier()
    return Outcome(run_id, written, "superseded" if supersede else "done", record)


def run_groups(groups: list[list[PlannedRun]], results: Path, data_root, workers: int = 2, progress: bool = True,
               rerun: bool = False, log: str | None = None, keep_going: bool = False,
               every: CheckpointEvery = CheckpointEvery()) -> Iterator[tuple[PlannedRun, Outcome]]:  # fmt: skip
    """Run planned runs as `benchmark run` does, yielding each with its outcome: `workers` processes corrupt the
    data and load every loader's images, checkpoints as `every` asks. The runs of a group share one suite build
    (suite, sizes, backbone preprocessing); a group whose runs are all recorded from the same source files is not
    built. Every other suite is built, and every existing record in it checked against its data, before the first
    run trains: a record made from other data stops the request early, as does a `log` whose package is missing.

    Each run is executed under its lock (benchmark/harness/lock.py): one that a live process holds elsewhere is
    not run, status "busy" (record: {"holder": who}). With keep_going, a run that raises is status "failed"
    (record: {"error": one line}; a bug's traceback goes to stderr) and the next run goes on."""
    require(log)
    # One fingerprint per group: its runs share the suite's sizes, so they read the same files.
    sources = [sources_fingerprint(group[0].config, data_root) for group in groups]
    # A group whose every run is recorded from these very source files is not built: skipping reads no data.
    kept = [None if rerun else recorded_from(group, results, fp) for group, fp in zip(groups, sources)]
    suites = [None if done else prepare_suite(group[0].config, data_root, progress=progress, workers=workers)
              for group, done in zip(groups, kept)]  # fmt: skip
    if not rerun:
        for group, suite in zip(groups, suites):
            for run in group if suite is not None else ():
                existing_record(run.config, suite, results)
    distributed.init_from_env()  # under torchrun rank 0 alone takes a run's lock, and every rank follows it
    for group, suite, fp, done in zip(groups, suites, sources, kept):
        for i, run in enumerate(group):
            cfg = run.config
            path = records.record_path(results, cfg.suite, cfg.run_id)
            if done is not None:
                yield run, Outcome(cfg.run_id, path, "skipped", done[i])
                continue
            try:
                with lock.take_in_group(lock.lock_path(path), distributed.is_main(), distributed.any_flag):
                    outcome = execute(cfg, suite, results, progress=progress, departures=run.departures, rerun=rerun,
                                      log=log, every=every, workers=workers, sources=fp)  # fmt: skip
            except lock.Busy as busy:
                holder = busy.holder.describe() if busy.holder else None
                outcome = Outcome(cfg.run_id, busy.path, "busy", {"holder": holder})
            except Exception as e:
                if not keep_going:
                    raise
                if not isinstance(e, BenchmarkError):  # a bug: its traceback, though the sweep goes on
                    traceback.print_exc()
                error = str(e) if isinstance(e, BenchmarkError) else f"{type(e).__name__}: {e}"
                outcome = Outcome(cfg.run_id, path, "failed", {"error": (error.splitlines() or [""])[0]})
            yield run, outcome
