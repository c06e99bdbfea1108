"""`benchmark sweep`: a grid over suites x methods x backbones x seeds x hyper-parameter values, each grid point
planned by plan() as `benchmark run` plans it (so a run's id is the one `run` gives it), run by a launcher:

  local     one run after another in this process, through run_groups as `benchmark run` runs them;
  parallel  N worker processes, each running whole runs; with GPUs each worker sees one (CUDA_VISIBLE_DEVICES,
            round robin), and the CPUs (torch threads, loader workers) are split between the workers;
  slurm     one SLURM array task per run, through submitit; a preempted or timed-out task is requeued and resumes
            from the run's checkpoint.

Runs whose record exists are skipped, and an interrupted run resumes from its checkpoint (execute does both).
Every launcher trains through run_groups, under the run's lock (lock.py), so sweeps, workers and `benchmark
run`s never train one config at once. A run that fails leaves ``<run_id>.failed`` beside where its record would
be (its one-line error, when, where); a later success removes it. status() reads records, locks and those files.
"""
from __future__ import annotations

import ast
import importlib
import itertools
import json
import multiprocessing
import os
import queue
import shutil
import socket
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from benchmark.data import SUITES, resolve_suite
from benchmark.engine.loaders import usable_cpus
from benchmark.engine.loop import CheckpointEvery
from benchmark.errors import BenchmarkError
from benchmark.files import atomic_write_bytes
from benchmark.harness import lock
from benchmark.harness.plan import PlannedRun, RunConfig, plan
from benchmark.harness.run import Outcome, run_groups
from benchmark.models import BACKBONES
from benchmark.report import records
from methods import METHODS

STATES = ("done", "running", "failed", "pending")


# --- the grid --------------------------------------------------------------------------------------------------

def literal(text: str):
    """A value as `run --set` reads it: a Python literal where it parses, else the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def axis(raw: str) -> list:
    """The values of one `--set key=...`: a comma list (lr=1e-3,1e-2) is a grid axis; a value that is itself a
    list or tuple is bracketed (alphas=[0,0.5,1] is one value, alphas=[0,1],[0,0.5,1] an axis of two)."""
    text = raw.strip()
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError:
        return [literal(text)]
    # A tuple without brackets starts where its first item does.
    bare = isinstance(node, ast.Tuple) and node.elts and node.elts[0].col_offset == node.col_offset
    return [literal(ast.get_source_segment(text, item)) for item in node.elts] if bare else [literal(text)]


def parse_grid(items: list[str] | None) -> dict[str, list]:
    """`--set key=a,b key2=c ...` -> {key: [a, b], key2: [c]}."""
    grid = {}
    for item in items or []:
        if "=" not in item:
            raise BenchmarkError(f"--set expects key=value or key=value1,value2,..., got {item!r}")
        key, raw = item.split("=", 1)
        grid[key] = axis(raw)
    return grid


def expand(suites, methods, backbones, seeds, image_size, grid: dict[str, list], sizes: dict) -> list[PlannedRun]:
    """Every run of the grid, in order (suite, backbone, grid point, then plan()'s methods and seeds), each planned
    by plan(); a run that two grid points share (an override its method does not have) is listed once."""
    runs: dict[str, PlannedRun] = {}
    for suite, backbone, values in itertools.product(suites, backbones, itertools.product(*grid.values())):
        for run in plan(suite, methods, backbone, seeds, image_size, dict(zip(grid, values)), sizes):
            runs.setdefault(run.config.run_id, run)
    return list(runs.values())


def axes(runs: list[PlannedRun], grid: dict[str, list]) -> list[str]:
    """What tells the grid's runs apart besides method and seed: "suite" and "backbone" when there are several,
    and each --set key with several values."""
    several = [field for field in ("suite", "backbone") if len({getattr(run.config, field) for run in runs}) > 1]
    return several + [key for key, values in grid.items() if len(values) > 1]


def label(run: PlannedRun, shown: list[str]) -> str:
    """A run as the sweep's lines name it: its suite and backbone if `shown`, method, seed, shown --set values."""
    cfg = run.config
    where = [getattr(cfg, field) for field in ("suite", "backbone") if field in shown]
    values = [f"{key}={cfg.hparams[key]!r}" for key in shown if key in cfg.hparams]
    return " ".join([*where, f"{cfg.method} seed {cfg.seed}", *values])


def groups_of(runs: list[PlannedRun]) -> list[list[PlannedRun]]:
    """The runs that can share one suite build (suite, sizes, backbone preprocessing), in first-seen order."""
    groups: dict[tuple, list[PlannedRun]] = {}
    for run in runs:
        cfg = run.config
        key = (cfg.suite, cfg.backbone, cfg.image_size, json.dumps(cfg.sizes, sort_keys=True, default=list))
        groups.setdefault(key, []).append(run)
    return list(groups.values())


# --- failed runs and status ------------------------------------------------------------------------------------

def record_of(results, run: PlannedRun) -> Path:
    return records.record_path(results, run.config.suite, run.config.run_id)


def has_record(results, run: PlannedRun) -> bool:
    return record_of(results, run).exists()


def failed_path(results, cfg: RunConfig) -> Path:
    return records.record_path(results, cfg.suite, cfg.run_id).with_suffix(".failed")


def note(results, cfg: RunConfig, outcome: Outcome) -> None:
    """Leave a failed run's error beside where its record would be; clear it once the run has its record."""
    path = failed_path(results, cfg)
    if outcome.status == "failed":
        failure = {"error": outcome.record["error"], "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   "host": socket.gethostname()}  # fmt: skip
        atomic_write_bytes(path, (json.dumps(failure) + "\n").encode())
    elif outcome.status != "busy":
        path.unlink(missing_ok=True)


def state_of(results, cfg: RunConfig) -> tuple[str, str]:
    """(state, detail): done (record exists), running (a live lock), failed (its .failed file), else pending."""
    record = records.record_path(results, cfg.suite, cfg.run_id)
    if record.exists():
        return "done", ""
    holder = lock.read(lock.lock_path(record))
    if holder is not None and not lock.is_stale(holder):
        return "running", holder.describe()
    failed = failed_path(results, cfg)
    if failed.exists():
        failure = json.loads(failed.read_text())
        return "failed", f"{failure['error']} (at {failure['at']} on {failure['host']})"
    return "pending", f"stale lock: {holder.describe()}" if holder is not None else ""


def status(runs: list[PlannedRun], results, shown: list[str]) -> list[str]:
    """One line per run of the grid, its state first, then the counts."""
    counts, lines = Counter(), []
    for run in runs:
        state, detail = state_of(results, run.config)
        counts[state] += 1
        lines.append(f"{state:<8} {run.config.run_id:<24} {label(run, shown)}" + (f"  ({detail})" if detail else ""))
    return lines + [f"{len(runs)} runs: " + ", ".join(f"{counts[s]} {s}" for s in STATES)]


# --- one run in a fresh process --------------------------------------------------------------------------------

def registrars(cfg: RunConfig) -> tuple[str, ...]:
    """The modules that register the run's suite, backbone and method. A worker imports them, so that what is
    registered outside benchmark's own lists (a plugin's suite or model, a test's) exists there too."""
    from benchmark.models.base import BackboneRequest

    family = BackboneRequest(cfg.backbone, (), cfg.image_size).family
    build = SUITES.get(cfg.suite).build
    # A suite card's builder is a functools.partial: its module is its function's.
    owners = (getattr(build, "func", build), BACKBONES.get(family), METHODS.get(cfg.method))
    return tuple(dict.fromkeys(o.__module__ for o in owners if o.__module__ != "__main__"))


@dataclass(frozen=True)
class Task:
    """One run as a worker process or a SLURM array task gets it: its RunConfig serialised, with what a fresh
    process needs to plan it again. Called (by submitit), it runs the run and fails as the run fails."""

    config: dict  # RunConfig.to_dict()
    departures: dict
    suite: str  # the suite's name, or the card it was read from
    imports: tuple[str, ...]
    results: str
    data_root: str | None
    workers: int
    log: str | None
    every: CheckpointEvery = CheckpointEvery()

    @classmethod
    def of(cls, run: PlannedRun, results, data_root, workers: int, log: str | None,
           every: CheckpointEvery = CheckpointEvery()) -> Task:  # fmt: skip
        cfg = run.config
        card = SUITES.cards.get(cfg.suite)
        suite = str(Path(card).resolve()) if card else cfg.suite
        data = str(Path(data_root).resolve()) if data_root else None
        return cls(cfg.to_dict(), run.departures, suite, registrars(cfg), str(Path(results).resolve()), data, workers, log,
                   every)  # fmt: skip

    def planned(self) -> PlannedRun:
        for module in self.imports:
            importlib.import_module(module)
        resolve_suite(self.suite)
        return PlannedRun(RunConfig(**self.config), self.departures)

    def __call__(self) -> Outcome:
        outcome = run_task(self)
        if outcome.status == "failed":  # the array task shows as failed (sacct, submitit's job.result())
            raise BenchmarkError(outcome.record["error"])
        return outcome

    def checkpoint(self):
        """submitit calls this on preemption or timeout: requeue the same task, which resumes from the run's
        checkpoint (and takes over its own lock: same SLURM job)."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self)


def run_task(task: Task) -> Outcome:
    """Run one task in this process, under its lock; any failure, planning and suite build included, is an
    outcome ("failed"), written beside its record."""
    cfg = RunConfig(**task.config)
    try:
        runs = run_groups([[task.planned()]], Path(task.results), task.data_root, task.workers, progress=False,
                          log=task.log, keep_going=True, every=task.every)  # fmt: skip
        _, outcome = next(runs)
    except Exception as e:
        if not isinstance(e, BenchmarkError):  # a bug: its traceback in the worker's output
            traceback.print_exc()
        error = str(e) if isinstance(e, BenchmarkError) else f"{type(e).__name__}: {e}"
        outcome = Outcome(cfg.run_id, records.record_path(task.results, cfg.suite, cfg.run_id), "failed",
                          {"error": (error.splitlines() or [""])[0]})  # fmt: skip
    note(task.results, cfg, outcome)
    return outcome


# --- launchers -------------------------------------------------------------------------------------------------

def run_local(runs: list[PlannedRun], results, data_root, workers: int, progress: bool, log: str | None,
              every: CheckpointEvery = CheckpointEvery()) -> Iterator[tuple[PlannedRun, Outcome]]:
    """One run after another in this process, as `benchmark run` runs them; a failed run does not stop the rest."""
    for run, outcome in run_groups(groups_of(runs), results, data_root, workers, progress, log=log, keep_going=True,
                                   every=every):  # fmt: skip
        note(results, run.config, outcome)
        yield run, outcome


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them."""
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        return [gpu.strip() for gpu in given.split(",") if gpu.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def worker(gpu: str | None, threads: int, todo, done) -> None:
    """A parallel worker: its GPU and CPU threads set before torch touches a device, then whole runs until the
    queue says stop. Ctrl-C (sent to every worker) ends it quietly; the run's lock is released on the way."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    import torch

    torch.set_num_threads(threads)
    try:
        for task in iter(todo.get, None):
            done.put(run_task(task))
    except KeyboardInterrupt:
        pass


def job_workers(workers: int, jobs: int) -> int:
    """Loader workers of each of `jobs` parallel jobs: at most its share of the CPUs less one (its training
    process), so that the jobs together do not oversubscribe the machine."""
    return min(workers, max(0, usable_cpus() // jobs - 1))


def run_parallel(runs: list[PlannedRun], jobs: int, results, data_root, workers: int, log: str | None,
                 every: CheckpointEvery = CheckpointEvery()) -> Iterator[tuple[PlannedRun, Outcome]]:
    """The runs on `jobs` worker processes, yielded as they finish; those with a record are skipped here."""
    todo_runs = []
    for run in runs:
        if has_record(results, run):
            yield run, Outcome(run.config.run_id, record_of(results, run), "skipped", {})
        else:
            todo_runs.append(run)
    if not todo_runs:
        return
    # spawn, not fork: a forked torch (threads started, CUDA) can deadlock or fail in the child.
    context = multiprocessing.get_context("spawn")
    todo, done = context.Queue(), context.Queue()
    threads = max(1, usable_cpus() // jobs)
    for run in todo_runs:
        todo.put(Task.of(run, results, data_root, job_workers(workers, jobs), log, every))
    gpus = visible_gpus()
    processes = [context.Process(target=worker, args=(gpus[slot % len(gpus)] if gpus else None, threads, todo, done))
                 for slot in range(jobs)]  # fmt: skip
    for process in processes:
        todo.put(None)  # one stop per worker, after every task
        process.start()
    by_id = {run.config.run_id: run for run in todo_runs}
    try:
        for _ in todo_runs:
            outcome = next_outcome(done, processes)
            yield by_id[outcome.run_id], outcome
    except BaseException:
        for process in processes:
            process.terminate()
        raise
    finally:
        for process in processes:
            process.join()


def next_outcome(done, processes) -> Outcome:
    """The next finished run's outcome; an error once every worker has exited with runs unfinished."""
    while True:
        try:
            return done.get(timeout=2)
        except queue.Empty:
            if not any(process.is_alive() for process in processes):
                raise BenchmarkError("the sweep's workers exited before finishing every run (killed, out of memory?); run "
                                     "the same sweep again: finished runs are skipped, interrupted ones resume") from None


@dataclass(frozen=True)
class Slurm:
    """What each array task asks SLURM for."""

    partition: str | None = None
    gpus_per_node: int = 1
    minutes: int = 240
    mem_gb: float | None = None
    cpus_per_task: int | None = None
    parallelism: int | None = None  # at most this many tasks at once (default: submitit's 256)


def minutes(text: str) -> int:
    """`--time`: minutes (240) or hours:minutes:seconds (4:00:00)."""
    parts = text.split(":")
    if len(parts) not in (1, 3) or not all(part.isdigit() for part in parts):
        raise BenchmarkError(f"--time {text}: give minutes (240) or hours:minutes:seconds (4:00:00)")
    hours, mins, secs = map(int, parts) if len(parts) == 3 else (0, int(parts[0]), 0)
    total = hours * 60 + mins + (secs > 0)
    if total < 1:
        raise BenchmarkError(f"--time {text}: give at least one minute")
    return total


def executor(folder: Path, slurm: Slurm, cluster: str = "slurm"):
    """A submitit executor for the sweep's array tasks. `cluster`: 'slurm', or submitit's 'local' and 'debug'
    (tests). Each task asks for one node and one task; it may be requeued (sbatch --requeue): after preemption
    by SLURM itself, after submitit's USR2 (90 s before the time limit, up to 3 timeouts) by Task.checkpoint."""
    try:
        import submitit
    except ImportError:
        raise BenchmarkError("--launcher slurm needs the submitit package: pip install 'oodbench[slurm]'") from None
    if cluster == "slurm" and shutil.which("sbatch") is None:
        raise BenchmarkError("--launcher slurm needs SLURM's sbatch on the PATH (run the sweep on a login node)")
    ex = submitit.AutoExecutor(folder=folder, cluster=cluster)
    ex.update_parameters(name="oodbench-sweep", nodes=1, tasks_per_node=1, timeout_min=slurm.minutes,
                         gpus_per_node=slurm.gpus_per_node or None, mem_gb=slurm.mem_gb,
                         cpus_per_task=slurm.cpus_per_task, slurm_partition=slurm.partition,
                         slurm_array_parallelism=slurm.parallelism, slurm_additional_parameters={"requeue": True})
    return ex


def submit(runs: list[PlannedRun], results, data_root, workers: int, log: str | None, slurm: Slurm,
           cluster: str = "slurm", every: CheckpointEvery = CheckpointEvery()) -> list:
    """Submit one array task per run, as one job array; returns submitit's jobs. Each task's output and pickles
    are in <results>/slurm/ under its job id (<array job>_<task>_...)."""
    ex = executor(Path(results).resolve() / "slurm", slurm, cluster)
    tasks = [Task.of(run, results, data_root, workers, log, every) for run in runs]
    with ex.batch():
        jobs = [ex.submit(task) for task in tasks]
    return jobs
