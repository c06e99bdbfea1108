"""`reproduce --plan` / `--run`: the runs behind a table are `benchmark run` commands planned as `run` plans them,
and `--run` finds every dataset before anything runs."""
import json
import shlex

import pytest

from benchmark.__main__ import main
from benchmark.data.cards import location
from benchmark.harness import run as harness_run
from benchmark.harness.run import Outcome
from benchmark.data import SUITES
from benchmark.harness import fill
from benchmark.report import records, reproduce
from test_reproduce import segmentation_record

DATASETS_READ = ("imagenet", "imagenet-v2", "imagenet-a", "imagenet-r", "imagenet-sketch", "objectnet", "pascal-context",
                 "domainnet")  # fmt: skip


@pytest.fixture
def no_data_env(monkeypatch):
    """No dataset is found through an environment variable (each card names its own)."""
    for name in DATASETS_READ:
        monkeypatch.delenv(location(name).env_var, raising=False)


def planned(text: str) -> dict[str, list[str]]:
    """`--plan` output -> {command line: the run ids listed under it}."""
    out, command = {}, None
    for line in text.splitlines():
        if line.startswith("python -m benchmark run "):
            command = line
            out[command] = []
        elif line.startswith("  ") and command:
            out[command].append(line.split()[2])  # "  to run  <id> ..." / "  has record  <id> ..."
    return out


def dry_run_ids(command: str, results, capsys) -> list[str]:
    """The run ids `benchmark run` gives the command (its --dry-run)."""
    capsys.readouterr()
    assert main(shlex.split(command)[3:] + ["--dry-run", "--results", str(results)]) == 0
    return [json.loads(line)["run_id"] for line in capsys.readouterr().out.splitlines()]


def plan_output(capsys, *argv) -> str:
    capsys.readouterr()
    assert main(["reproduce", *argv, "--plan"]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("name", list(reproduce.TABLES))
def test_plan_prints_run_commands_whose_run_ids_are_the_planners(name, tmp_path, capsys):
    out = plan_output(capsys, name, "--results", str(tmp_path), "--seed", "0", "1")
    commands = planned(out)
    assert commands and all(" --seed 0 1" in c for c in commands)
    for command, ids in commands.items():
        assert ids == dry_run_ids(command, tmp_path, capsys)
    rows = reproduce.TABLES[name].rows.values()
    assert sorted({(r.backbone, r.method) for r in rows}) == sorted(
        {(c.config.backbone, c.config.method) for cmd in fill.commands(name, [0]) for c in cmd.runs})
    assert not (tmp_path / "reproduce").exists()  # --plan writes nothing


def test_one_command_covers_the_methods_that_share_everything_else(tmp_path, capsys):
    out = plan_output(capsys, "tpgm-domainnet", "--results", str(tmp_path))
    assert list(planned(out)) == [
        "python -m benchmark run --suite domainnet --method ft tpgm --backbone clip:RN50/openai --seed 0",
        "python -m benchmark run --suite domainnet --method ft tpgm --backbone timm:resnet50.mocov3 --seed 0",
    ]


def test_plan_marks_the_runs_whose_records_exist(tmp_path, capsys):
    ft = fill.commands("tpgm-imagenet", [0])[0].runs[0].config
    assert ft.method == "ft"
    path = records.record_path(tmp_path, ft.suite, ft.run_id)
    path.parent.mkdir(parents=True)
    path.write_text("{}")
    out = plan_output(capsys, "tpgm-imagenet", "--results", str(tmp_path))
    assert f"  has record  {ft.run_id}" in out
    assert out.count("  to run  ") == 3
    assert f"4 runs: 1 with a record in {tmp_path / 'runs' / 'imagenet'}/, 3 to run" in out


def test_overrides_of_a_row_become_set_arguments(tmp_path, capsys, monkeypatch):
    base = reproduce.TABLES["tpgm-imagenet"]
    grid = (("alphas", (0.4, 0.5)),)
    rows = {("wise-ft-0.4",): reproduce.Row(reproduce.CLIP_B16, "wise-ft", "wise-ft@0.4", grid),
            ("wise-ft-0.5",): reproduce.Row(reproduce.CLIP_B16, "wise-ft", "wise-ft@0.5", grid),
            ("ft",): reproduce.Row(reproduce.CLIP_B16, "ft", "ft")}  # fmt: skip
    monkeypatch.setitem(reproduce.TABLES, "grid", reproduce.TableSpec("t", base.csv, "imagenet", ("method",), rows, base.columns))
    commands = planned(plan_output(capsys, "grid", "--results", str(tmp_path)))
    assert list(commands) == [
        "python -m benchmark run --suite imagenet --method wise-ft --backbone clip:ViT-B-16/openai --seed 0 --set 'alphas=(0.4, 0.5)'",
        "python -m benchmark run --suite imagenet --method ft --backbone clip:ViT-B-16/openai --seed 0",
    ]
    for command, ids in commands.items():
        assert ids == dry_run_ids(command, tmp_path, capsys)
    assert fill.commands("grid", [0])[0].runs[0].config.hparams["alphas"] == (0.4, 0.5)


def test_run_without_data_names_each_missing_dataset_and_writes_nothing(tmp_path, capsys, monkeypatch, no_data_env):
    monkeypatch.setattr(harness_run, "run_groups", lambda *a, **k: pytest.fail("ran without data"))
    results = tmp_path / "results"
    argv = ["reproduce", "tpgm-pascal-semseg", "tpgm-pascal-parts", "--run", "--results", str(results),
            "--data-root", str(tmp_path / "no-data")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1  # one dataset behind both suites: one line
    assert err[0].startswith("error: missing dataset pascal-context (suites pascal-context, pascal-parts): ")
    assert "PASCAL_MT.tgz" in err[0] and "PASCAL_MT_DIR" in err[0] and "benchmark prepare pascal-context" in err[0]
    assert main(["reproduce", "lipsum-ft-imagenet", "--run", "--results", str(results), "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert [line.split()[3] for line in err] == ["imagenet", "imagenet-v2", "imagenet-a", "imagenet-r", "imagenet-sketch", "objectnet"]
    assert not results.exists()


def test_run_needs_named_tables(tmp_path, capsys):
    assert main(["reproduce", "--run", "--results", str(tmp_path)]) == 2
    assert "--run needs the table(s) to fill" in capsys.readouterr().err


@pytest.mark.parametrize("name", list(reproduce.TABLES))
def test_every_tables_data_can_be_checked_before_running(name):
    assert all(SUITES.get(cmd.suite).needs is not None for cmd in fill.commands(name, [0]))


def test_run_executes_the_planned_runs_through_the_harness_then_writes_the_table(tmp_path, capsys, monkeypatch):
    """With the data found, every planned run goes through prepare_suite/execute (faked here: no PASCAL data in
    tests) and the table is regenerated from the records they wrote."""
    monkeypatch.setattr("benchmark.harness.fill.missing_data", lambda *a: {})
    built, ran = [], []
    monkeypatch.setattr(harness_run, "prepare_suite", lambda cfg, *a, **k: built.append(cfg.suite) or object())

    def execute(cfg, suite, results, progress=True, departures=None, rerun=False, log=None, every=None, workers=0, sources=None):
        ran.append(cfg.run_id)
        record = {**segmentation_record(cfg.suite, cfg.method, "tpgm", cfg.seed, 0.64, {1: 0.6, 5: 0.5}),
                  "run_id": cfg.run_id, "wall_s": 1.0}  # fmt: skip
        return Outcome(cfg.run_id, records.write_record(results, record), "done", record)

    monkeypatch.setattr(harness_run, "execute", execute)
    assert main(["reproduce", "tpgm-pascal-parts", "--run", "--seed", "0", "1", "--results", str(tmp_path), "--no-progress"]) == 0
    assert built == ["pascal-parts"]
    assert ran == [run.config.run_id for cmd in fill.commands("tpgm-pascal-parts", [0, 1]) for run in cmd.runs]
    text = (tmp_path / "reproduce" / "tpgm-pascal-parts.md").read_text()
    assert "| tpgm | ours (2 seeds) | 64.00 | 55.00 | – |" in text
    assert "| tpgm | ours − published | +0.71 | -5.16 |  |" in text
