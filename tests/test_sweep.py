"""`benchmark sweep`: the grid planned as `run` plans it, the local, parallel and SLURM (submitit) launchers, the
per-run lock in every path that trains, failed-run files and --status. On the tiny in-memory suite of the
method tests (a few seconds a run)."""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import method_smoke  # noqa: F401 - registers the tiny suite and backbone
from benchmark.__main__ import main
from benchmark.engine.loop import CheckpointEvery
from benchmark.harness import lock, sweep
from benchmark.harness.plan import plan
from benchmark.harness.run import Outcome

TESTS = Path(__file__).resolve().parent
# Two runs of a few steps each: lr is the grid's one axis.
GRID = ["--set", "lr=0.01,0.02", "epochs=1", "batch_size=8", "eval_batch_size=16"]
HPARAMS = {"epochs": [1], "batch_size": [8], "eval_batch_size": [16]}


def sweep_cli(results, *extra) -> int:
    return main(["sweep", "--suite", "tiny", "--method", "ft", *GRID, "--results", str(results), "--no-progress",
                 "--workers", "1", *extra])  # fmt: skip


def tiny_runs(lrs=(0.01, 0.02), seeds=(0,)):
    return sweep.expand(["tiny"], ["ft"], [None], seeds, None, {"lr": list(lrs), **HPARAMS}, {})


def record_files(results) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted((Path(results) / "runs" / "tiny").glob("*.json"))}


@pytest.fixture
def live_pid():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def hold(results, run, pid, host=None):
    """A lock on `run` as another process would hold it."""
    path = lock.lock_path(sweep.record_of(results, run))
    path.parent.mkdir(parents=True, exist_ok=True)
    now = time.time()
    path.write_text(json.dumps({"host": host or socket.gethostname(), "pid": pid, "job": None, "token": "elsewhere",
                                "started": now - 60, "heartbeat": now - 5}))  # fmt: skip
    return path


def test_a_comma_list_is_an_axis_and_a_bracketed_list_one_value():
    assert sweep.axis("1e-3,1e-2") == [0.001, 0.01]
    assert sweep.axis("0.1") == [0.1]
    assert sweep.axis("sgd,adamw") == ["sgd", "adamw"]
    assert sweep.axis("[0,0.5,1]") == [[0, 0.5, 1]]
    assert sweep.axis("[0,1],[0,0.5,1]") == [[0, 1], [0, 0.5, 1]]
    assert sweep.axis("(1,3)") == [(1, 3)]
    assert sweep.axis("'a,b'") == ["a,b"]
    assert sweep.parse_grid(["lr=1e-3,1e-2", "epochs=1"]) == {"lr": [0.001, 0.01], "epochs": [1]}


def test_the_grid_is_the_product_of_its_axes_with_run_ids_as_run_plans_them():
    grid = {"lr": [0.01, 0.02], "epochs": [1, 2]}
    runs = sweep.expand(["tiny"], ["ft", "lp"], [None], [0, 1], None, grid, {})
    expected = [run.config.run_id for lr in grid["lr"] for epochs in grid["epochs"]
                for run in plan("tiny", ["ft", "lp"], None, [0, 1], None, {"lr": lr, "epochs": epochs}, {})]  # fmt: skip
    assert [run.config.run_id for run in runs] == expected and len(set(expected)) == 16


def test_a_run_two_grid_points_share_is_listed_once():
    runs = sweep.expand(["tiny"], ["ft", "wise-ft"], [None], [0], None, {"alphas": [[0.0, 1.0], [0.0, 0.5, 1.0]]}, {})
    assert sorted(run.config.method for run in runs) == ["ft", "wise-ft", "wise-ft"]  # ft has no alphas


def test_dry_run_prints_each_run_as_run_dry_run_does(tmp_path, capsys):
    assert sweep_cli(tmp_path, "--seed", "0", "1", "--dry-run") == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 4 and not any(line["record_exists"] for line in lines)
    for lr in (0.01, 0.02):
        assert main(["run", "--suite", "tiny", "--method", "ft", "--seed", "0", "1", "--set", f"lr={lr}", *GRID[2:],
                     "--results", str(tmp_path), "--dry-run"]) == 0  # fmt: skip
        ran = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert ran == [line for line in lines if line["hparams"]["lr"] == lr]
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("argv, message", [
    (["--set", "lr=0.01,abc"], "error: hyper-parameter lr expects float, got 'abc'"),
    (["--set", "lr"], "error: --set expects key=value or key=value1,value2,..., got 'lr'"),
    (["--set", "nope=1,2"], "error: no selected method has hyper-parameter(s) ['nope']"),
    (["--partition", "gpu"], "error: --partition is for --launcher slurm (this sweep's launcher: local)"),
    (["--jobs", "2"], "error: --jobs is for --launcher parallel (worker processes) or slurm (array tasks at once)"),
    (["--launcher", "slurm", "--time", "1:30"], "error: --time 1:30: give minutes (240) or hours:minutes:seconds (4:00:00)"),
])  # fmt: skip
def test_bad_sweep_input_is_a_one_line_error(tmp_path, capsys, argv, message):
    assert main(["sweep", "--suite", "tiny", "--method", "ft", "--results", str(tmp_path), *argv]) == 2
    assert capsys.readouterr().err == message + "\n"
    assert not (tmp_path / "runs").exists()


def test_run_set_takes_one_value(tmp_path, capsys):
    assert main(["run", "--suite", "tiny", "--method", "ft", "--set", "lr=0.01,0.02", "--results", str(tmp_path),
                 "--dry-run"]) == 2  # fmt: skip
    assert capsys.readouterr().err == ("error: hyper-parameter lr expects float, got (0.01, 0.02); one run per value is "
                                       "a sweep: benchmark sweep --set lr=0.01,0.02\n")  # fmt: skip


def test_a_local_sweep_runs_its_grid_then_skips_what_is_finished(tmp_path, capsys):
    assert sweep_cli(tmp_path) == 0
    out = capsys.readouterr().out
    assert "[1/2] ft seed 0 lr=0.01: " in out and "[2/2] ft seed 0 lr=0.02: " in out and out.count(" done in ") == 2
    first = record_files(tmp_path)
    assert sorted(first) == sorted(f"{run.config.run_id}.json" for run in tiny_runs())
    assert sorted(p.name for p in (tmp_path / "runs" / "tiny").iterdir()) == sorted(first)  # no lock, no .failed
    assert sweep_cli(tmp_path) == 0
    out = capsys.readouterr().out
    assert out.count("exists, skipped") == 2 and "2 runs: 0 ran now, 2 had a record" in out
    assert record_files(tmp_path) == first


def test_parallel_workers_write_the_records_a_sequential_sweep_writes(tmp_path, capsys):
    assert sweep_cli(tmp_path / "seq") == 0
    assert sweep_cli(tmp_path / "par", "--launcher", "parallel", "--jobs", "2") == 0
    out = capsys.readouterr().out
    assert "2 worker processes" in out and "2 runs: 2 ran now" in out
    seq, par = record_files(tmp_path / "seq"), record_files(tmp_path / "par")
    assert sorted(seq) == sorted(par) and len(seq) == 2
    for name in seq:
        assert par[name]["config"] == seq[name]["config"]
        assert [row["value"] for row in par[name]["evals"]] == pytest.approx([row["value"] for row in seq[name]["evals"]])
        for curve, values in seq[name]["curves"].items():  # approx: the workers' CPU threads differ (1 vs all)
            assert par[name]["curves"][curve] == pytest.approx(values, rel=1e-5)


def test_a_run_locked_by_a_live_process_is_skipped_by_sweep_and_run(tmp_path, capsys, live_pid):
    run = tiny_runs(lrs=(0.01,))[0]
    path = hold(tmp_path, run, live_pid)
    assert sweep_cli(tmp_path) == 0
    out = capsys.readouterr().out
    assert f"{run.config.run_id} running elsewhere ({socket.gethostname()}, pid {live_pid}, heartbeat 5s ago), skipped" in out
    assert "2 runs: 1 ran now, 0 had a record, 1 running elsewhere, 0 failed" in out
    assert main(["run", "--suite", "tiny", "--method", "ft", "--set", "lr=0.01", *GRID[2:], "--results", str(tmp_path),
                 "--no-progress", "--workers", "1"]) == 0  # fmt: skip
    assert "running elsewhere" in capsys.readouterr().out
    assert not sweep.has_record(tmp_path, run) and json.loads(path.read_text())["token"] == "elsewhere"


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path, capsys):
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    run = tiny_runs(lrs=(0.01,))[0]
    path = hold(tmp_path, run, int(proc.stdout))
    assert sweep_cli(tmp_path) == 0
    assert "2 runs: 2 ran now" in capsys.readouterr().out
    assert sweep.has_record(tmp_path, run) and not path.exists()


def test_a_failed_run_leaves_its_error_and_the_sweep_goes_on(tmp_path, capsys):
    code = main(["sweep", "--suite", "tiny", "--method", "ft", "--set", "lr=1e30,0.01", *GRID[2:], "--results",
                 str(tmp_path), "--no-progress", "--workers", "1"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 2 and err == "error: 1 of 2 runs failed: --status lists their errors, and the same sweep again retries them\n"
    assert "failed: ft: non-finite loss" in out and "2 runs: 1 ran now" in out
    bad = sweep.expand(["tiny"], ["ft"], [None], [0], None, {"lr": [1e30], **HPARAMS}, {})[0]
    failure = json.loads(sweep.failed_path(tmp_path, bad.config).read_text())
    assert failure["error"].startswith("ft: non-finite loss") and failure["host"] == socket.gethostname()
    # A later success clears it.
    sweep.note(tmp_path, bad.config, Outcome(bad.config.run_id, sweep.record_of(tmp_path, bad), "done", {}))
    assert not sweep.failed_path(tmp_path, bad.config).exists()


def test_status_lists_done_running_failed_and_pending(tmp_path, capsys, live_pid):
    done, running, failed, pending = tiny_runs(lrs=(0.01, 0.02), seeds=(0, 1))
    sweep.record_of(tmp_path, done).parent.mkdir(parents=True)
    sweep.record_of(tmp_path, done).write_text("{}")
    hold(tmp_path, running, live_pid, host=socket.gethostname())
    sweep.note(tmp_path, failed.config, Outcome(failed.config.run_id, Path(), "failed", {"error": "out of memory"}))
    assert main(["sweep", "--suite", "tiny", "--method", "ft", "--seed", "0", "1", *GRID, "--results", str(tmp_path),
                 "--status"]) == 0  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    state = {line.split()[1]: line for line in lines[:-1]}
    assert state[done.config.run_id].startswith("done     ")
    assert state[running.config.run_id].startswith("running  ") and f"pid {live_pid}, heartbeat 5s ago" in state[running.config.run_id]
    assert state[failed.config.run_id].startswith("failed   ") and "(out of memory (at " in state[failed.config.run_id]
    assert state[pending.config.run_id] == f"pending  {pending.config.run_id:<24} ft seed 1 lr=0.02"
    assert lines[-1] == "4 runs: 1 done, 1 running, 1 failed, 1 pending"


def test_submitit_runs_an_array_task_end_to_end(tmp_path, monkeypatch):
    # The job is a fresh Python: it imports the module registering the tiny suite from tests/.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
    run = tiny_runs(lrs=(0.01,))[0]
    jobs = sweep.submit([run], tmp_path, None, 1, None, sweep.Slurm(gpus_per_node=0, minutes=5), cluster="local")
    outcome = jobs[0].result()
    assert outcome.status == "done" and outcome.path == sweep.record_of(tmp_path, run)
    assert record_files(tmp_path)[f"{run.config.run_id}.json"]["config"] == run.config.to_dict()
    assert not lock.lock_path(outcome.path).exists() and any((tmp_path / "slurm").iterdir())


def test_slurm_submits_the_runs_neither_finished_nor_running_with_the_flags_asked(tmp_path, capsys, monkeypatch, live_pid):
    done, running, *pending = tiny_runs(seeds=(0, 1))
    sweep.record_of(tmp_path, done).parent.mkdir(parents=True)
    sweep.record_of(tmp_path, done).write_text("{}")
    hold(tmp_path, running, live_pid)
    submitted = {}

    def submit(runs, results, data_root, workers, log, slurm, every):
        submitted.update(runs=runs, slurm=slurm, every=every)
        return [SimpleNamespace(job_id="77_0"), SimpleNamespace(job_id="77_1")]

    monkeypatch.setattr(sweep, "submit", submit)
    assert sweep_cli(tmp_path, "--seed", "0", "1", "--launcher", "slurm", "--partition", "gpu", "--time", "4:00:00",
                     "--mem", "64", "--jobs", "8", "--ckpt-every-minutes", "30") == 0  # fmt: skip
    assert submitted["runs"] == pending
    assert submitted["slurm"] == sweep.Slurm(partition="gpu", gpus_per_node=1, minutes=240, mem_gb=64, parallelism=8)
    assert submitted["every"] == CheckpointEvery(steps=0, minutes=30.0)  # each task checkpoints as asked
    out = capsys.readouterr().out
    assert "4 runs: 1 with a record and 1 running (both skipped), 2 to submit" in out
    assert "submitted them as SLURM job array 77 " in out


def test_the_sbatch_file_asks_for_the_flags_and_requeue(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep.shutil, "which", lambda name: f"/usr/bin/{name}")  # as on a login node
    ex = sweep.executor(tmp_path, sweep.Slurm(partition="gpu", gpus_per_node=2, minutes=sweep.minutes("1:30:00"),
                                              mem_gb=32, cpus_per_task=8, parallelism=4))  # fmt: skip
    text = ex._executor._make_submission_file_text("python -m submitit", "uid")
    for flag in ("--partition=gpu", "--gpus-per-node=2", "--time=90", "--mem=32GB", "--cpus-per-task=8", "--requeue",
                 "--signal=USR2@90", "--nodes=1", "--ntasks-per-node=1"):  # fmt: skip
        assert f"#SBATCH {flag}\n" in text
    assert ex._executor.parameters["array_parallelism"] == 4


def test_slurm_without_sbatch_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sweep.shutil, "which", lambda name: None)
    assert sweep_cli(tmp_path, "--launcher", "slurm") == 2
    assert capsys.readouterr().err == "error: --launcher slurm needs SLURM's sbatch on the PATH (run the sweep on a login node)\n"


def test_parallel_jobs_share_the_cpus_between_their_loader_workers(monkeypatch):
    monkeypatch.setattr(sweep, "usable_cpus", lambda: 8)
    assert sweep.job_workers(7, 1) == 7 and sweep.job_workers(7, 2) == 3 and sweep.job_workers(7, 8) == 0
    assert sweep.job_workers(1, 2) == 1  # a smaller count asked for is kept
