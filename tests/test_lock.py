"""The per-run lock (benchmark/harness/lock.py): atomic, live while its heartbeat beats, taken over when stale."""
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from benchmark.harness import lock

HOLD = """
import sys, time
from pathlib import Path
from benchmark.harness import lock
path, go, ready = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
ready.touch()
while not go.exists():
    time.sleep(0.005)
try:
    held = lock.take(path)
    print("took", flush=True)
    time.sleep(1.5)
    held.release()
except lock.Busy:
    print("busy", flush=True)
"""


def write_lock(path, host=None, pid=None, age=0.0, job=None, token="other"):
    now = time.time() - age
    path.write_text(json.dumps({"host": host or socket.gethostname(), "pid": pid or os.getppid(), "job": job,
                                "token": token, "started": now, "heartbeat": now}))  # fmt: skip


@pytest.fixture
def dead_pid():
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def test_take_writes_who_holds_it_and_release_removes_it(tmp_path):
    path = tmp_path / "ft-abc.lock"
    with lock.take(path) as held:
        holder = lock.read(path)
        assert (holder.host, holder.pid, holder.token) == (socket.gethostname(), os.getpid(), held.holder.token)
        assert holder.job is None and time.time() - holder.heartbeat < 5
    assert not path.exists()


def test_of_processes_racing_for_one_lock_exactly_one_takes_it(tmp_path):
    path, go = tmp_path / "ft-abc.lock", tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(4)]
    procs = [subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(go), str(r)], stdout=subprocess.PIPE, text=True)
             for r in ready]  # fmt: skip
    deadline = time.time() + 60
    while not all(r.exists() for r in ready) and time.time() < deadline:  # every process imported and waiting
        time.sleep(0.01)
    go.touch()
    outs = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert outs == ["busy", "busy", "busy", "took"]
    assert not path.exists()


def test_a_live_lock_is_busy_and_names_its_holder(tmp_path):
    path = tmp_path / "ft-abc.lock"
    write_lock(path, host="gpu-node-7", pid=1234, age=20)
    with pytest.raises(lock.Busy) as e:
        lock.take(path)
    assert e.value.holder.host == "gpu-node-7" and "gpu-node-7, pid 1234, heartbeat 20s ago" in str(e.value)
    assert json.loads(path.read_text())["token"] == "other"  # untouched


def test_a_lock_of_a_dead_process_on_this_host_is_taken_over(tmp_path, dead_pid):
    path = tmp_path / "ft-abc.lock"
    write_lock(path, pid=dead_pid)
    with lock.take(path) as held:
        assert lock.read(path).token == held.holder.token
    assert not path.exists() and not list(tmp_path.iterdir())  # nothing set aside is left behind


def test_a_lock_whose_heartbeat_stopped_is_taken_over_from_any_host(tmp_path):
    path = tmp_path / "ft-abc.lock"
    write_lock(path, host="gpu-node-7", pid=1234, age=lock.STALE_S + 1)
    with lock.take(path) as held:
        assert lock.read(path).token == held.holder.token


def test_a_requeued_slurm_task_takes_over_its_own_lock_only(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "900")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    path = tmp_path / "ft-abc.lock"
    write_lock(path, host="gpu-node-7", pid=1234, job="900_4")
    with pytest.raises(lock.Busy):
        lock.take(path)
    write_lock(path, host="gpu-node-7", pid=1234, job="900_3")  # this task's earlier start, before a requeue
    with lock.take(path) as held:
        assert held.holder.job == "900_3"


def test_a_lock_caught_before_its_first_write_is_live_until_stale(tmp_path):
    path = tmp_path / "ft-abc.lock"
    path.touch()
    with pytest.raises(lock.Busy):
        lock.take(path)
    old = time.time() - lock.STALE_S - 1
    os.utime(path, (old, old))
    with lock.take(path):
        pass


def test_the_heartbeat_is_refreshed_while_held(tmp_path):
    path = tmp_path / "ft-abc.lock"
    with lock.take(path, interval=0.05) as held:
        first = lock.read(path).heartbeat
        deadline = time.time() + 10
        while lock.read(path).heartbeat == first and time.time() < deadline:
            time.sleep(0.02)
        assert lock.read(path).heartbeat > first
        assert lock.read(path).started == held.holder.started


def test_a_lock_taken_over_meanwhile_is_neither_refreshed_nor_removed_by_its_old_holder(tmp_path):
    path = tmp_path / "ft-abc.lock"
    held = lock.take(path, interval=3600)
    write_lock(path, host="gpu-node-7", pid=1234, token="new-owner")
    held.refresh()
    held.release()
    assert json.loads(path.read_text())["token"] == "new-owner"


def test_in_a_torchrun_group_the_main_process_alone_takes_the_lock_and_all_follow(tmp_path):
    path = tmp_path / "ft-abc.lock"
    with lock.take_in_group(path, main=False, agree=lambda busy: [False]) as held:
        assert held is None and not path.exists()  # a non-main process: rank 0 holds it
    with pytest.raises(lock.Busy):  # rank 0 found it held elsewhere: every rank skips
        with lock.take_in_group(path, main=False, agree=lambda busy: [True]):
            pass
    with lock.take_in_group(path) as held:
        assert lock.read(path).token == held.holder.token
    assert not path.exists()
