"""Command line: python -m benchmark {list,run,leaderboard,prepare} (`benchmark` when installed)."""
from __future__ import annotations

import argparse
import ast
import json
import math
import os
import sys
import time
from pathlib import Path

from benchmark.errors import BenchmarkError

EPILOG = """examples:
  python -m benchmark run                          # embedded default: digits, digitnet, every default method, seeds 0 1 2
  python -m benchmark run --method ft --seed 0 1 2 --epochs 3
  python -m benchmark run --method tpgm --set lr=0.005 --size n_train=500
  python -m benchmark run --suite domainnet --dry-run   # the resolved plan: every method's budget, run ids
  python -m benchmark leaderboard                  # regenerate results/<suite>.md and .csv from records
  python -m benchmark list
"""


def parse_assignments(items: list[str], what: str) -> dict:
    """key=value pairs; values are Python literals where they parse (0.1, 3, True, (1, 3)), else strings."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise BenchmarkError(f"--{what} expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            out[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            out[key] = raw
    return out


def cmd_list(args) -> int:
    from benchmark.data import DATASETS, SUITES
    from benchmark.data.cards import card, location
    from benchmark.models import BACKBONES
    from methods import METHODS

    for title, registry in (("suites", SUITES), ("methods", METHODS), ("backbones", BACKBONES), ("datasets", DATASETS)):
        print(f"{title}:")
        for name, description in registry.describe():
            # From the dataset's card: where it is looked for, or (data inside a package) where it ships.
            where = "" if registry is not DATASETS else (
                f" ({location(name).where()})" if "location" in card(name) else f" ({card(name)['offline_source']})")
            print(f"  {name:<14} {description}{where}")
    return 0


def check_seeds(seeds) -> None:
    bad = [s for s in seeds or () if not 0 <= s < 2**32]
    if bad:
        raise BenchmarkError(f"--seed {bad[0]}: seeds are whole numbers from 0 to 2**32 - 1")


def check_folders(results, suites, report: bool = True) -> None:
    """Prove the results and cache folders writable before anything trains, and say (if `report`) how much room
    they have."""
    from benchmark.report import records
    from benchmark.resources import cache_root

    folders = [("results", Path(results) / "runs" / suite) for suite in suites] + [("cache", cache_root())]
    free = {what: records.writable_folder(folder, what) for what, folder in folders}
    if report:
        print(f"results: {results} ({free['results'] / 2**30:.1f} GiB free); cache: {cache_root()} "
              f"({free['cache'] / 2**30:.1f} GiB free)", flush=True)  # fmt: skip


def outcome_line(i: int, total: int, label: str, outcome, skipped="exists, skipped (--rerun runs it again)") -> str:
    """One run's line in `run`, `reproduce --run` and `sweep`: what became of it, and where its file is."""
    record, where = outcome.record, f" -> {outcome.path}"
    if outcome.status == "skipped":
        verb = skipped
    elif outcome.status == "busy":  # another process holds the run's lock
        verb = f"running elsewhere ({record['holder'] or 'another process'}), skipped"
    elif outcome.status == "failed":
        verb, where = f"failed: {record['error']}", ""
    else:
        superseding = ", superseding the old record" if outcome.status == "superseded" else ""
        verb = f"done in {record['wall_s']:.0f}s{superseding}"
    return f"[{i}/{total}] {label}: {outcome.run_id} {verb}{where}"


def reporter() -> bool:
    """Whether this process prints and writes the tables. Under torchrun every process runs the command (and its
    runs, together: benchmark/engine/distributed.py), and rank 0 alone reports; elsewhere the one process does."""
    from benchmark.engine import distributed

    distributed.init_from_env()
    return distributed.is_main()


def checkpoint_every(args):
    """--ckpt-every-steps and --ckpt-every-minutes, checked (`reproduce` has neither: per epoch only)."""
    from benchmark.engine.loop import CheckpointEvery

    steps, minutes = getattr(args, "ckpt_every_steps", 0), getattr(args, "ckpt_every_minutes", 0.0)
    if steps < 0:
        raise BenchmarkError(f"--ckpt-every-steps must be a whole number of steps >= 0 (0: off), got {steps}")
    if not 0 <= minutes < math.inf:
        raise BenchmarkError(f"--ckpt-every-minutes must be a number of minutes >= 0 (0: off), got {minutes:g}")
    return CheckpointEvery(steps, minutes)


def run_and_report(groups, args, suites, report: bool) -> list[str]:
    """Check the results and cache folders, then run the planned groups, one line per run if `report`; returns
    each run's status."""
    from benchmark.harness.run import run_groups

    every = checkpoint_every(args)
    check_folders(args.results, suites, report)
    rerun, log = getattr(args, "rerun", False), getattr(args, "log", None)  # `reproduce` has neither flag
    total, statuses = sum(map(len, groups)), []
    for i, (run, outcome) in enumerate(run_groups(groups, args.results, args.data_root, args.workers,
                                                  not args.no_progress, rerun, log, every=every), 1):  # fmt: skip
        cfg = run.config
        where = f"{cfg.suite} " if len(suites) > 1 else ""
        if report:
            print(outcome_line(i, total, f"{where}{cfg.method} seed {cfg.seed}", outcome), flush=True)
        statuses.append(outcome.status)
    return statuses


def cmd_run(args) -> int:
    from benchmark.harness.plan import plan
    from benchmark.report.publish import publish

    overrides = parse_assignments(args.set, "set")
    if args.epochs is not None:
        if overrides.get("epochs", args.epochs) != args.epochs:
            raise BenchmarkError(f"--epochs {args.epochs} and --set epochs={overrides['epochs']} disagree; give the epochs once")
        overrides["epochs"] = args.epochs
    if args.image_size is not None and args.image_size < 1:
        raise BenchmarkError(f"--image-size must be a positive number of pixels, got {args.image_size}")
    check_seeds(args.seed)
    runs = plan(args.suite, args.method, args.backbone, args.seed, args.image_size, overrides,
                parse_assignments(args.size, "size"))  # fmt: skip
    report = reporter()
    if args.dry_run:
        for run in runs if report else ():
            print(json.dumps(run.describe(args.results), default=list))
        return 0
    started = time.time()
    statuses = run_and_report([runs], args, [args.suite], report)
    if not report:
        return 0
    if not any((Path(args.results) / "runs" / args.suite).glob("*.json")):  # every run busy elsewhere
        print("no records yet; the tables are written when a run finishes")
        return 0
    published = publish(args.results, args.suite)
    print()
    if statuses and all(status == "skipped" for status in statuses):
        print(f"Every run was recorded before: the numbers below are the records' in {Path(args.results) / 'runs'} (a "
              "fresh clone's are those committed with the repository), not this machine's. To train afresh, add "
              "--rerun (the old records move to superseded/) or give a new --results folder.\n")  # fmt: skip
    print(published.summary)
    print(f"wrote {', '.join(map(str, published.paths))} ({time.time() - started:.0f}s in all)")
    return 0


SWEEP_EPILOG = """the grid: every suite x backbone x combination of --set values, each planned as `run` plans it
(the same run ids and records, so `run` and `sweep` skip each other's finished runs); then every method x seed.
A comma list is an axis (lr=1e-3,1e-2); a value that is itself a list is bracketed (alphas=[0,0.5,1]).
Finished runs are skipped and interrupted ones resume from their checkpoint: run the same sweep again after a
crash, a preemption or an edit that adds values. Each run trains under a lock, <results>/runs/<suite>/<run id>.lock
(host, pid, heartbeat), so that sweeps, their workers and `run`s never train one config at once; a run that
fails leaves <run id>.failed (its error) there, and the sweep goes on with the others.

examples:
  python -m benchmark sweep --method ft lp --seed 0 1 --set lr=1e-3,1e-2 epochs=1,2 --dry-run
  python -m benchmark sweep --method ft lp --seed 0 1 --set lr=1e-3,1e-2 --launcher parallel --jobs 4
  python -m benchmark sweep --suite domainnet --method ft wise-ft --seed 0 1 2 --set lr=1e-4,3e-4 \\
      --launcher slurm --partition gpu --gpus-per-node 1 --time 12:00:00 --mem 64 --cpus-per-task 8
  python -m benchmark sweep --method ft lp --seed 0 1 --set lr=1e-3,1e-2 --status
"""
# Flags that only `--launcher slurm` reads (argparse dests).
SLURM_FLAGS = ("partition", "gpus_per_node", "time", "mem", "cpus_per_task")


def check_sweep_flags(args) -> None:
    """A flag its launcher ignores is a mistake: say so rather than run without it."""
    given = [f"--{flag.replace('_', '-')}" for flag in SLURM_FLAGS if getattr(args, flag) is not None]
    if given and args.launcher != "slurm":
        raise BenchmarkError(f"{given[0]} is for --launcher slurm (this sweep's launcher: {args.launcher})")
    if args.jobs is not None and args.launcher == "local":
        raise BenchmarkError("--jobs is for --launcher parallel (worker processes) or slurm (array tasks at once)")
    if args.jobs is not None and args.jobs < 1:
        raise BenchmarkError(f"--jobs must be at least 1, got {args.jobs}")
    if args.image_size is not None and args.image_size < 1:
        raise BenchmarkError(f"--image-size must be a positive number of pixels, got {args.image_size}")
    check_seeds(args.seed)


def cmd_sweep(args) -> int:
    from benchmark.data import resolve_suite
    from benchmark.engine import distributed
    from benchmark.harness import sweep

    check_sweep_flags(args)
    every = checkpoint_every(args)
    grid = sweep.parse_grid(args.set)
    runs = sweep.expand([resolve_suite(s) for s in args.suites], args.method, args.backbone or [None], args.seed,
                        args.image_size, grid, parse_assignments(args.size, "size"))  # fmt: skip
    report = reporter()
    if distributed.world_size() > 1 and args.launcher != "local" and not (args.dry_run or args.status):
        raise BenchmarkError(f"--launcher {args.launcher} starts processes of its own: run the sweep without torchrun")
    if args.dry_run:
        for run in runs if report else ():
            print(json.dumps(run.describe(args.results), default=list))
    elif args.status:
        if report:
            print("\n".join(sweep.status(runs, args.results, sweep.axes(runs, grid))))
    elif args.launcher == "slurm":
        submit_sweep(runs, args, every)
    else:
        run_sweep(runs, args, sweep.axes(runs, grid), every, report)
    return 0


def run_sweep(runs, args, shown, every, report: bool) -> None:
    """The local launchers: one line per run as it ends, then the tables (if `report`); failed runs are an error
    at the end."""
    from collections import Counter

    from benchmark.harness import sweep
    from benchmark.report.publish import publish

    suites = list(dict.fromkeys(run.config.suite for run in runs))
    check_folders(args.results, suites, report)
    if args.launcher == "parallel":
        gpus = sweep.visible_gpus()
        jobs = args.jobs or len(gpus) or 2
        each = f"one of GPUs {','.join(gpus)} each" if gpus else "the CPU threads split between them"
        print(f"{jobs} worker processes, {each}", flush=True)
        outcomes = sweep.run_parallel(runs, jobs, args.results, args.data_root, args.workers, args.log, every)
    else:
        outcomes = sweep.run_local(runs, args.results, args.data_root, args.workers, not args.no_progress, args.log,
                                   every)  # fmt: skip
    counts, changed = Counter(), {}
    for i, (run, outcome) in enumerate(outcomes, 1):
        counts[outcome.status] += 1
        if outcome.status in ("done", "superseded"):
            changed[run.config.suite] = None
        if report:
            print(outcome_line(i, len(runs), sweep.label(run, shown), outcome, skipped="exists, skipped"), flush=True)
    if not report:
        return
    for suite in changed:  # the tables of suites with new records
        paths = publish(args.results, suite).paths
        print(f"wrote {', '.join(map(str, paths))}")
    print(f"{len(runs)} runs: {counts['done'] + counts['superseded']} ran now, {counts['skipped']} had a record, "
          f"{counts['busy']} running elsewhere, {counts['failed']} failed")  # fmt: skip
    if counts["failed"]:
        raise BenchmarkError(f"{counts['failed']} of {len(runs)} runs failed: --status lists their errors, and the same "
                             f"sweep again retries them")  # fmt: skip


def submit_sweep(runs, args, every) -> None:
    """`--launcher slurm`: one array task per run neither finished nor running; the jobs run on after this returns."""
    from benchmark.harness import sweep

    asked = {"partition": args.partition, "gpus_per_node": args.gpus_per_node, "mem_gb": args.mem,
             "minutes": sweep.minutes(args.time) if args.time else None, "cpus_per_task": args.cpus_per_task,
             "parallelism": args.jobs}  # fmt: skip
    slurm = sweep.Slurm(**{key: value for key, value in asked.items() if value is not None})
    # A run that is running now is not submitted again. One still queued from an earlier submission cannot be seen
    # from here: of it and its duplicate, the one that starts second finds the record or the lock and ends at once.
    states = [sweep.state_of(args.results, run.config)[0] for run in runs]
    todo = [run for run, state in zip(runs, states) if state in ("pending", "failed")]
    print(f"{len(runs)} runs: {states.count('done')} with a record and {states.count('running')} running (both skipped), "
          f"{len(todo)} to submit")  # fmt: skip
    if not todo:
        return
    check_folders(args.results, list(dict.fromkeys(run.config.suite for run in todo)))
    jobs = sweep.submit(todo, args.results, args.data_root, args.workers, args.log, slurm, every=every)
    print(f"submitted them as SLURM job array {jobs[0].job_id.split('_')[0]} (logs in "
          f"{Path(args.results).resolve() / 'slurm'}/); the same sweep with --status follows them, and run again "
          f"submits what is left")  # fmt: skip


EVAL_EPILOG = """the checkpoint (read with torch.load(weights_only=True), so it can run no code):
  a state dict of the backbone with its head, keyed as oodbench builds the model (backbone.*, head.*;
  CLIP: text.* too), at the top level or under 'state_dict', 'model_state_dict' or 'model'; for
  clip:... also open_clip's own layout (visual.*, text tower at the top). A CLIP checkpoint without
  head.* gets the zero-shot head of its own text tower for the suite's class names, as the zeroshot
  method builds it; the record says so.

the record: <results>/runs/<suite>/external-<id>.json, method external, one variant (--name); the id
hashes the suite, backbone, image size, sizes and the file's sha256 (not its name). It sits in the
tables beside trained methods; the same checkpoint again is skipped unless --rerun.

examples:
  python -m benchmark eval --suite fmnist-c --backbone lite0 --checkpoint ft.pt
  python -m benchmark eval --suite imagenet --backbone clip:ViT-B-32/openai --checkpoint clip-ft.pt --name my-clip-ft
"""


def cmd_eval(args) -> int:
    from benchmark.harness.external import run_external
    from benchmark.report.publish import publish

    if args.image_size is not None and args.image_size < 1:
        raise BenchmarkError(f"--image-size must be a positive number of pixels, got {args.image_size}")
    outcome = run_external(args.suite, args.backbone, args.checkpoint, args.results, args.image_size,
                           parse_assignments(args.size, "size"), args.data_root, args.name, not args.no_progress,
                           args.workers, args.rerun)  # fmt: skip
    record = outcome.record
    label = record["evals"][0]["variant"]
    verb = {"skipped": f"exists (as {label}), skipped (--rerun evaluates it again)",
            "superseded": f"done in {record['wall_s']:.0f}s, superseding the old record"}.get(
        outcome.status, f"done in {record['wall_s']:.0f}s")  # fmt: skip
    print(f"{args.suite} external {label}: {outcome.run_id} {verb} -> {outcome.path}")
    print(f"head: {record['checkpoint']['head']}", flush=True)
    paths, text, _ = publish(args.results, args.suite)
    print()
    print(text)
    print(f"wrote {', '.join(map(str, paths))}")
    return 0


def cmd_leaderboard(args) -> int:
    from benchmark.report import formats
    from benchmark.report.publish import publish

    kinds = formats.parse_formats(args.format)  # before reading records: a typo fails at once
    paths, text, _ = publish(args.results, args.suite, kinds, args.by)
    print(text)
    print("wrote " + ", ".join(map(str, paths)))
    return 0


def cmd_prepare(args) -> int:
    from benchmark.data import DATASETS

    report = DATASETS.get(args.dataset)(args.data_root, download=args.download)
    print(report.text)
    return 0 if report.ok else 2


def cmd_pretrain(args) -> int:
    from benchmark.harness import pretrain

    recipe = pretrain.recipe({**parse_assignments(args.set, "set"), "seed": args.seed})
    print(pretrain.pretrain(args.out, recipe))
    return 0


def cmd_reproduce(args) -> int:
    from benchmark.harness import fill
    from benchmark.report import reproduce

    names = args.table or list(reproduce.TABLES)
    check_seeds(args.seed)  # None: each table's own seeds
    if args.plan:
        print(fill.plan_text(names, args.results, args.seed))
        return 0
    if args.run:
        if not args.table:  # every table is weeks of GPU time: name the ones to fill
            raise BenchmarkError(f"--run needs the table(s) to fill, e.g. `benchmark reproduce {names[0]} --run`; --plan shows their runs")
        cmds = [cmd for name in names for cmd in fill.commands(name, args.seed)]
        missing = fill.missing(cmds, args.data_root)
        for line in missing:
            print(f"error: {line}", file=sys.stderr)
        if missing:
            return 2
        report = reporter()  # under torchrun every process trains, and rank 0 alone writes the tables
        run_and_report([cmd.runs for cmd in cmds], args, list(dict.fromkeys(cmd.suite for cmd in cmds)), report)
        if not report:
            return 0
    planned = {name: [run.config for cmd in fill.commands(name, args.seed) for run in cmd.runs]
               for name in names if name in reproduce.claims.CLAIMS}  # fmt: skip
    for path, text in reproduce.write(args.results, names, planned):
        print(text)
        print(f"wrote {path}\n")
    return 0


def cmd_bench(args) -> int:
    from benchmark.speed import SECTIONS

    SECTIONS.load()
    for name in args.section or SECTIONS.names():
        print(f"## {name}")
        for line in SECTIONS.get(name)(quick=args.quick):
            print(line, flush=True)
    return 0


def cmd_corrupt(args) -> int:
    from benchmark.corruption import corruptions

    if args.list:
        print("\n".join(corruptions.CORRUPTIONS))
        return 0
    if args.image is None or args.corruption is None or args.output is None:
        raise BenchmarkError("corrupt needs IMAGE, --corruption NAME and -o OUT.png (or --list)")
    corruptions.corrupt_file(args.image, args.corruption, args.severity, args.seed, args.output, args.force)
    print(f"wrote {args.output} ({args.corruption}, severity {args.severity}, seed {args.seed})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from benchmark.engine.loaders import default_workers
    from benchmark.harness.plan import DEFAULT_SUITE

    parser = argparse.ArgumentParser(
        prog="benchmark", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="oodbench: how much ID accuracy does a fine-tuning method gain, and how much OOD "
                    "robustness does it keep? Runs write one immutable record each under results/runs/; "
                    "tables are regenerated from records.",
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command", metavar="{list,run,sweep,eval,leaderboard,reproduce,prepare,pretrain,corrupt,bench}")
    results = dict(type=Path, default=Path(os.environ.get("OODBENCH_RESULTS", "results")),
                   help="results directory (records in <results>/runs/<suite>/; default: results)")  # fmt: skip
    data_root = dict(type=Path, default=None, help="where datasets live (else per-dataset env vars and defaults)")
    workers = dict(type=int, default=default_workers(),
                   help=f"processes for corrupting data and for loading images (decode and augment) while training "
                        f"and evaluating; 0: in the training process (default: one per CPU up to 8, less one for "
                        f"training: {default_workers()} here). Results do not depend on it")  # fmt: skip
    ckpt_steps = dict(type=int, default=0, metavar="N",
                      help="checkpoint every N optimizer steps as well as after every epoch (default 0: off); a run "
                           "resumes from its last checkpoint at that step, to the numbers of an uninterrupted run")  # fmt: skip
    ckpt_minutes = dict(type=float, default=0.0, metavar="M",
                        help="checkpoint every M minutes as well (default 0: off); SIGTERM and SIGUSR1 always write "
                             "one at the next step and exit 75, for a requeue")  # fmt: skip

    p = sub.add_parser("list", help="list suites, methods and backbones")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("run", help="fine-tune and evaluate (no arguments: the embedded default suite)",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)  # fmt: skip
    p.add_argument("--suite", default=DEFAULT_SUITE,
                   help=f"suite name (default: {DEFAULT_SUITE}; see `list`), or a suite card: path/to/card.toml")
    p.add_argument("--method", nargs="+", help="method name(s) (default: the suite's default set)")
    p.add_argument("--backbone", help="backbone, e.g. lite0, timm:resnet50, clip:ViT-B-32/openai (default: per suite)")
    p.add_argument("--seed", nargs="+", type=int,
                   help="seed(s); each is one run and one record (default: the suite's: 0 1 2 for digits, 0 elsewhere)")
    p.add_argument("--epochs", type=int, help="training epochs (overrides the suite's recipe for every method; "
                                              "shown as a budget departure)")
    p.add_argument("--image-size", type=int, help="input resolution (default: per suite)")
    p.add_argument("--set", nargs="+", metavar="KEY=VALUE", help="hyper-parameter overrides, e.g. lr=0.003")
    p.add_argument("--size", nargs="+", metavar="KEY=VALUE", help="suite size overrides, e.g. n_train=500")
    p.add_argument("--workers", **workers)
    p.add_argument("--ckpt-every-steps", **ckpt_steps)
    p.add_argument("--ckpt-every-minutes", **ckpt_minutes)
    p.add_argument("--dry-run", action="store_true",
                   help="print the resolved plan, one JSON line per run (suite, method, backbone, seed, "
                        "hyper-parameters, sizes, budget departures, run id, whether its record exists); "
                        "reads no data and trains nothing")  # fmt: skip
    p.add_argument("--rerun", action="store_true",
                   help="run configurations whose record exists again; the old record is moved to "
                        "<results>/runs/<suite>/superseded/ (never deleted) and the new one takes its place")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--log", choices=["tensorboard"],
                   help="also log each step's loss terms and learning rates, each epoch's curves and the "
                        "evaluation as TensorBoard event files in <results>/tensorboard/<suite>/<run id>/ "
                        "(needs pip install 'oodbench[log]'; off by default)")  # fmt: skip
    p.add_argument("--data-root", **data_root)
    p.add_argument("--results", **results)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("sweep", help="a grid of runs (suites x methods x backbones x seeds x --set values), run here, "
                                     "on parallel workers or as SLURM array tasks",
                       description="Plan a grid of runs as `run` plans them and run the ones without a record: "
                                   "sequentially, on worker processes, or as a SLURM job array (submitit).",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=SWEEP_EPILOG)  # fmt: skip
    p.add_argument("--suite", dest="suites", nargs="+", default=[DEFAULT_SUITE],
                   help=f"suite name(s) or suite card(s) (default: {DEFAULT_SUITE})")
    p.add_argument("--method", nargs="+", help="method name(s) (default: each suite's default set)")
    p.add_argument("--backbone", nargs="+", help="backbone(s) (default: each suite's)")
    p.add_argument("--seed", nargs="+", type=int, default=[0], help="seed(s) (default: 0)")
    p.add_argument("--set", nargs="+", metavar="KEY=V1,V2",
                   help="hyper-parameter values, each comma list a grid axis, e.g. lr=1e-3,1e-2 epochs=1,2 "
                        "(`run --set` takes one value per key)")  # fmt: skip
    p.add_argument("--size", nargs="+", metavar="KEY=VALUE", help="suite size overrides, as in `run` (one value each)")
    p.add_argument("--image-size", type=int, help="input resolution (default: per suite)")
    todo = p.add_mutually_exclusive_group()
    todo.add_argument("--dry-run", action="store_true",
                      help="print the expanded plan, one JSON line per run, as `run --dry-run` does; trains nothing")
    todo.add_argument("--status", action="store_true",
                      help="list the grid's runs as done (record), running (a live lock: host, pid, heartbeat), "
                           "failed (with the error) or pending, with counts; trains nothing")  # fmt: skip
    p.add_argument("--launcher", choices=("local", "parallel", "slurm"), default="local",
                   help="local: one run after another here (default); parallel: --jobs worker processes, one GPU "
                        "each when there are GPUs, the CPU threads split between them; slurm: one SLURM array task "
                        "per run via submitit (pip install 'oodbench[slurm]'), requeued on preemption or timeout")  # fmt: skip
    p.add_argument("--jobs", type=int,
                   help="parallel: worker processes (default: one per visible GPU, else 2); slurm: array tasks "
                        "running at once (default: submitit's 256)")  # fmt: skip
    p.add_argument("--partition", help="slurm: the partition")
    p.add_argument("--gpus-per-node", type=int, help="slurm: GPUs per array task (default: 1; 0 for CPU only)")
    p.add_argument("--time", help="slurm: time limit per task, minutes or hours:minutes:seconds (default: 240); "
                                  "a task that reaches it is requeued and resumes (3 times at most)")
    p.add_argument("--mem", type=float, metavar="GB", help="slurm: memory per task in GB (default: the partition's)")
    p.add_argument("--cpus-per-task", type=int, help="slurm: CPUs per task (default: the partition's)")
    each = "; for each run (slurm: each task, whose CPUs the default does not see: give --cpus-per-task less one)"
    p.add_argument("--workers", **{**workers, "help": workers["help"] + each})
    p.add_argument("--ckpt-every-steps", **ckpt_steps)
    p.add_argument("--ckpt-every-minutes", **ckpt_minutes)
    p.add_argument("--no-progress", action="store_true", help="no progress bars (the parallel and slurm launchers "
                                                              "never show them)")
    p.add_argument("--log", choices=["tensorboard"], help="as in `run`")
    p.add_argument("--data-root", **data_root)
    p.add_argument("--results", **results)
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("eval", help="evaluate a checkpoint trained elsewhere on every eval set of a suite; recorded "
                                    "like a run (method external)",
                       description="Score a checkpoint on every eval set of a suite (the selection split too) and "
                                   "write a record like a run's, so it appears in the tables beside trained methods.",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EVAL_EPILOG)  # fmt: skip
    p.add_argument("--suite", required=True, help="suite name (see `list`)")
    p.add_argument("--backbone", required=True,
                   help="the architecture the weights are for, named as `run` names it: lite0, timm:resnet50, "
                        "torchvision:resnet50, clip:ViT-B-32/openai (its pretrained weights are not needed)")  # fmt: skip
    p.add_argument("--checkpoint", required=True, type=Path, metavar="FILE", help="the weights (see below)")
    p.add_argument("--name", default="external", metavar="LABEL",
                   help="the variant name in tables (default: external); not part of the record's id")  # fmt: skip
    p.add_argument("--image-size", type=int, help="input resolution (default: per suite; as in `run`)")
    p.add_argument("--size", nargs="+", metavar="KEY=VALUE",
                   help="suite size overrides, e.g. n_test=500 (recorded and shown as a departure)")  # fmt: skip
    p.add_argument("--workers", **workers)
    p.add_argument("--rerun", action="store_true",
                   help="evaluate again though the record exists; the old record is moved to "
                        "<results>/runs/<suite>/superseded/ (never deleted)")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--data-root", **data_root)
    p.add_argument("--results", **results)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("leaderboard", help="regenerate results/<suite>.md and .csv (or --format) from the records")
    p.add_argument("--suite", default=DEFAULT_SUITE, help="suite name, or a suite card's path or name")
    p.add_argument("--results", **results)
    p.add_argument("--format", default="md,csv,tex", metavar="md,csv,tex,html",
                   help="comma-separated formats, each written to <results>/<suite>.<format> (default: md,csv,tex); "
                        "tex: booktabs tables, best mean per column in bold; html: one page, sortable tables")  # fmt: skip
    p.add_argument("--by", choices=("corruption", "severity"), default="corruption",
                   help="OOD columns: one per corruption (or OOD set; default), or one per severity, the mean over "
                        "corruptions at it (suites whose OOD evals are <corruption>@<severity>)")  # fmt: skip
    p.set_defaults(func=cmd_leaderboard)

    p = sub.add_parser("prepare", help="say what to download and where; verify an existing copy")
    p.add_argument("dataset", help="dataset name (see `list`)")
    p.add_argument("--download", action="store_true", help="download where the source allows it (needs network)")
    p.add_argument("--data-root", **data_root)
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("pretrain", help="regenerate the digitnet weights the digits suite ships (about 10 CPU-minutes)",
                       description="Render digits from the Debian font packages (see benchmark/harness/pretrain.py) and "
                                   "pretrain digitnet on them, deterministically; prints the file's sha256 beside the "
                                   "shipped weights'. Use the result with --backbone digitnet:FILE.")
    p.add_argument("--out", type=Path, required=True, help="where to write the weights (an existing file is never overwritten)")
    p.add_argument("--seed", type=int, default=0, help="rendering and training seed (default 0: the shipped weights')")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="recipe overrides: n_train, n_val, epochs, batch_size, lr, weight_decay (tests use tiny sizes)")
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("reproduce", help="paper tables: published numbers beside ours (from records); `proxy`: the "
                                         "papers' claims tested on suite digits")  # fmt: skip
    p.add_argument("table", nargs="*", help="tables to regenerate (default: every paper table, see "
                                            "benchmark.report.reproduce.TABLES; `proxy` only when named)")  # fmt: skip
    todo = p.add_mutually_exclusive_group()
    todo.add_argument("--plan", action="store_true",
                      help="print the `benchmark run` commands that fill the tables, each run marked by whether its "
                           "record exists in --results; reads no data and writes nothing")  # fmt: skip
    todo.add_argument("--run", action="store_true",
                      help="run those runs (existing records are skipped), then regenerate the tables; first checks "
                           "that every dataset they read is there")  # fmt: skip
    p.add_argument("--seed", nargs="+", type=int, help="seeds of every run (default: 0 for the paper tables, 0 1 2 for proxy)")
    p.add_argument("--workers", **workers)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--data-root", **data_root)
    p.add_argument("--results", **results)
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("bench", help="speed ratios measured side by side in one run (methods, corruptions, ...)")
    p.add_argument("section", nargs="*", help="sections to run (default: all)")
    p.add_argument("--quick", action="store_true", help="fewer repeats and smaller inputs")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("corrupt", help="corrupt one image (imagecorruptions, seeded): PNG in, PNG out")
    p.add_argument("image", nargs="?", type=Path, help="input image (PNG, JPEG, ...)")
    p.add_argument("--corruption", help="corruption name (see --list)")
    p.add_argument("--severity", type=int, default=3, help="1..5 (default: 3)")
    p.add_argument("--seed", type=int, default=0, help="np.random seed (default: 0)")
    p.add_argument("-o", "--output", type=Path, help="output PNG (never overwritten without --force)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.add_argument("--list", action="store_true", help="print the 15 corruption names")
    p.set_defaults(func=cmd_corrupt)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        if getattr(args, "suite", None):  # a suite card's path: registered, then named by its name (runs/<name>/)
            from benchmark.data import resolve_suite

            args.suite = resolve_suite(args.suite)
        if getattr(args, "workers", 0) < 0:
            raise BenchmarkError(f"--workers must be 0 (load in the main process) or more, got {args.workers}")
        return args.func(args)
    except BenchmarkError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume from the last checkpoint", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`benchmark run --dry-run | head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
