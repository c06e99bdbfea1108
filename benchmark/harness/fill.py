"""The runs behind a paper table (`benchmark reproduce TABLE --plan / --run`): `benchmark run` commands planned as
`run` plans them (so their run ids are the ones `run` uses), every dataset they read found before anything runs."""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from benchmark.data import missing_data
from benchmark.harness.plan import PlannedRun, plan
from benchmark.report import records
from benchmark.report.reproduce import table


@dataclass
class Command:
    """One `benchmark run` command: a table's runs that share suite, backbone and overrides."""

    suite: str
    backbone: str
    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    overrides: dict
    runs: list[PlannedRun]

    def argv(self) -> list[str]:
        argv = ["run", "--suite", self.suite, "--method", *self.methods, "--backbone", self.backbone,
                "--seed", *map(str, self.seeds)]  # fmt: skip
        if self.overrides:  # repr: `run` reads each value back with ast.literal_eval
            argv += ["--set", *(f"{k}={v!r}" for k, v in self.overrides.items())]
        return argv

    def line(self) -> str:
        return "python -m benchmark " + shlex.join(self.argv())


def commands(name: str, seeds=None) -> list[Command]:
    """The runs that fill table `name`, one command per (backbone, overrides), planned as `run` plans them.
    `seeds`: None for the table's own."""
    spec = table(name)
    seeds = tuple(spec.seeds if seeds is None else seeds)
    groups: dict[tuple, list[str]] = {}
    for backbone, overrides, method in spec.runs():
        methods = groups.setdefault((backbone, overrides), [])
        if method not in methods:  # several rows may read variants of one run (e.g. WiSE-FT's alphas)
            methods.append(method)
    return [Command(spec.suite, backbone, tuple(methods), seeds, dict(overrides),
                    plan(spec.suite, methods, backbone, seeds, None, dict(overrides), {}))
            for (backbone, overrides), methods in groups.items()]  # fmt: skip


def plan_text(names: list[str], results: Path, seeds=None) -> str:
    """`reproduce --plan`: each table's command lines, each run under its command marked by whether its record exists."""
    lines = []
    for name in names:
        cmds = commands(name, seeds)
        lines += [f"## {name}: {table(name).title}"]
        done = total = 0
        for cmd in cmds:
            lines.append(cmd.line())
            for run in cmd.runs:
                cfg = run.config
                exists = records.record_path(results, cfg.suite, cfg.run_id).exists()
                done, total = done + exists, total + 1
                lines.append(f"  {'has record' if exists else 'to run':<10}  {cfg.run_id:<26} {cfg.method}, seed {cfg.seed}")
        runs_dir = Path(results) / "runs" / table(name).suite
        lines += [f"{total} run{'s' if total > 1 else ''}: {done} with a record in {runs_dir}/, {total - done} to run", ""]
    return "\n".join(lines)


def missing(cmds: list[Command], data_root) -> list[str]:
    """One line per dataset the commands read that cannot be found: which, where it was looked for, how to get it."""
    why, used_by = {}, {}
    for cmd in cmds:
        for run in cmd.runs:
            for name, reason in missing_data(cmd.suite, run.config.sizes, data_root).items():
                why[name] = reason
                used_by.setdefault(name, {})[cmd.suite] = None
    return [f"missing dataset {name} (suite{'s' if len(used_by[name]) > 1 else ''} {', '.join(used_by[name])}): "
            f"{reason}; `benchmark prepare {name}` checks a copy" for name, reason in why.items()]  # fmt: skip
