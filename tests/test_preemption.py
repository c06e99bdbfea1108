"""Preemption-safe checkpoints: every K steps or M minutes besides every epoch, and on SIGTERM / SIGUSR1 at the next
step boundary (then exit 75); a run resumed from a mid-epoch checkpoint gives the record of an uninterrupted one."""
import functools
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import test_accumulation
from benchmark.engine import loop
from benchmark.harness import run as harness_run
from benchmark.report import records
from methods import METHODS
from test_accumulation import run

pytestmark = pytest.mark.faults  # the fault suite: `pytest -m faults`
# 72 images in steps of 8: 9 steps per epoch, 2 epochs
HP = {"batch_size": 8}


def numbers(record: dict):
    return [(r["variant"], r["eval"], r["value"]) for r in record["evals"]], record["curves"]


def checkpoint_of(record: dict, root) -> Path:
    return records.record_path(root, "tiny", record["run_id"]).with_suffix(".ckpt.pt")


def interrupt_at(monkeypatch, method: str, at: int, interruption) -> None:
    """Call `interruption()` in the method's after_step of (0-based) optimizer step `at`."""
    cls = METHODS.get(method)
    after_step = cls.after_step

    def interrupted(self, model, step):
        result = after_step(self, model, step)
        if step == at:
            interruption()
        return result

    monkeypatch.setattr(cls, "after_step", interrupted)


def raise_interrupt():
    raise KeyboardInterrupt


def checkpoint_every(monkeypatch, **every) -> None:
    """`run` checkpoints as --ckpt-every-steps / --ckpt-every-minutes ask (the CLI passes them to execute)."""
    execute = functools.partial(harness_run.execute, every=loop.CheckpointEvery(**every))
    monkeypatch.setattr(test_accumulation, "execute", execute)


@pytest.mark.parametrize("method", ["ft", "tpgm"])
@pytest.mark.parametrize("crash, saved", [(5, (0, 4)), (13, (1, 3))])  # after steps 4 and 12 (every 2 steps)
def test_a_run_crashed_mid_epoch_resumes_from_its_step_checkpoint_exactly(method, crash, saved, tmp_path, monkeypatch, capsys):
    clean = run(method, tmp_path / "clean", **HP)
    checkpoint_every(monkeypatch, steps=2)
    with monkeypatch.context() as patch:
        interrupt_at(patch, method, crash, raise_interrupt)
        with pytest.raises(KeyboardInterrupt):
            run(method, tmp_path / "resumed", **HP)
    state = torch.load(checkpoint_of(clean, tmp_path / "resumed"), weights_only=True)
    assert (state["epoch"], state["batches"]) == saved
    capsys.readouterr()
    resumed = run(method, tmp_path / "resumed", **HP)
    assert f"in epoch {saved[0] + 1} after step {saved[1]}/9" in capsys.readouterr().out
    assert numbers(resumed) == numbers(clean)


@pytest.mark.parametrize("method", ["ft", "tpgm"])
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGUSR1])
def test_a_stop_signal_checkpoints_at_the_next_step_and_exits_75_and_the_resumed_run_equals_a_clean_one(
        method, stop, tmp_path, monkeypatch, capsys):  # fmt: skip
    clean = run(method, tmp_path / "clean", **HP)
    with monkeypatch.context() as patch:
        interrupt_at(patch, method, 6, lambda: os.kill(os.getpid(), stop))
        with pytest.raises(loop.Preempted) as exit:
            run(method, tmp_path / "resumed", **HP)
    assert exit.value.code == loop.EXIT_PREEMPTED == 75
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"stopped by {stop.name} in epoch 1 after step 7/9; checkpoint ")
    assert signal.getsignal(stop) is signal.SIG_DFL  # the loop's handlers are gone with it
    state = torch.load(checkpoint_of(clean, tmp_path / "resumed"), weights_only=True)
    assert (state["epoch"], state["batches"]) == (0, 7)
    assert numbers(run(method, tmp_path / "resumed", **HP)) == numbers(clean)


CHILD = """
import os, sys
sys.path[:0] = [{tests!r}, {repo!r}]
from methods import METHODS
from test_accumulation import run

ft = METHODS.get("ft")
after_step = ft.after_step

def announced(self, model, step):
    after_step(self, model, step)
    if step == 2:
        print("ready", flush=True)
        import time; time.sleep(1)  # the signal arrives meanwhile; the step boundary comes after

ft.after_step = announced
run("ft", {results!r}, batch_size=8)
"""


def test_sigterm_from_outside_stops_a_run_process_with_exit_75_and_one_line(tmp_path):
    tests = Path(__file__).parent
    code = CHILD.format(tests=str(tests), repo=str(tests.parent), results=str(tmp_path))
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 75, err
    (line,) = err.strip().splitlines()
    assert line.startswith("stopped by SIGTERM in epoch 1 after step 3/9; checkpoint ")
    assert line.endswith("run the same command again to resume (exit 75)")
    (checkpoint,) = (tmp_path / "runs" / "tiny").glob("*.ckpt.pt")
    assert torch.load(checkpoint, weights_only=True)["batches"] == 3


def test_a_checkpoint_every_few_minutes(tmp_path, monkeypatch):
    saved = []
    monkeypatch.setattr(loop, "save_checkpoint", lambda path, state: saved.append((state["epoch"], state["batches"])))
    checkpoint_every(monkeypatch, minutes=1e-9)  # due after every step
    run("ft", tmp_path, batch_size=32)  # 3 steps per epoch
    assert saved == [(0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (2, 0)]


def cli(command: str, results, *extra) -> int:
    """A tiny `run` or `sweep` of ft through the command line: 16 images in steps of 8, 2 epochs."""
    from benchmark.__main__ import main

    return main([command, "--suite", "tiny", "--method", "ft", "--set", "epochs=2", "batch_size=8", "eval_batch_size=16",
                 "--workers", "0", "--results", str(results), "--no-progress", *extra])  # fmt: skip


@pytest.mark.parametrize("command", ["run", "sweep"])
@pytest.mark.parametrize("flag, value", [("--ckpt-every-steps", "1"), ("--ckpt-every-minutes", "1e-9")])
def test_the_checkpoint_flags_reach_the_loop(command, flag, value, tmp_path, monkeypatch, capsys):
    import method_smoke  # noqa: F401 - registers the tiny suite

    saved = []
    monkeypatch.setattr(loop, "save_checkpoint", lambda path, state: saved.append((state["epoch"], state["batches"])))
    assert cli(command, tmp_path / "per-epoch") == 0
    assert saved == [(1, 0), (2, 0)]  # the default: once per epoch
    saved.clear()
    assert cli(command, tmp_path / "per-step", flag, value) == 0
    assert saved == [(0, 1), (1, 0), (1, 1), (2, 0)]


@pytest.mark.parametrize("flag, value, message", [
    ("--ckpt-every-steps", "-2", "--ckpt-every-steps must be a whole number of steps >= 0 (0: off), got -2"),
    ("--ckpt-every-minutes", "-1", "--ckpt-every-minutes must be a number of minutes >= 0 (0: off), got -1"),
    ("--ckpt-every-minutes", "inf", "--ckpt-every-minutes must be a number of minutes >= 0 (0: off), got inf"),
])  # fmt: skip
@pytest.mark.parametrize("command", ["run", "sweep"])
def test_a_bad_checkpoint_interval_is_one_line(command, flag, value, message, tmp_path, capsys):
    import method_smoke  # noqa: F401 - registers the tiny suite

    assert cli(command, tmp_path, flag, value) == 2
    assert capsys.readouterr().err == f"error: {message}\n"
    assert not (tmp_path / "runs").exists()
