"""One lock per run: two processes (two `benchmark run`s, sweep workers, SLURM array tasks) never train the
same config at once.

The lock is a file beside the run's record, ``<results>/runs/<suite>/<run_id>.lock``, created atomically
(O_CREAT|O_EXCL) and holding one JSON object: host, pid, SLURM job (``<array job>_<task>`` or the job id;
null outside SLURM), a random token, when it was taken and a heartbeat, all times in seconds since the epoch.
A daemon thread rewrites the heartbeat every HEARTBEAT_S seconds while the run trains.

A lock is stale, and the next process that wants it takes it over, when its heartbeat is older than STALE_S,
or it was taken on this host by a process that is gone (or by one whose pid this process now has), or by an
earlier start of this same SLURM job (a requeued task). Any other lock is live: the run is skipped as
running elsewhere (Busy). A lock is removed when its run ends, by its holder only.
"""
from __future__ import annotations

import dataclasses
import json
import os
import secrets
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

HEARTBEAT_S = 30.0
# Ten missed heartbeats: a process this late is hung or gone, not slow (training steps take seconds).
STALE_S = 300.0
# Tokens of the locks this process holds: a lock with our pid and another token is a dead namesake's.
_HELD: set[str] = set()


@dataclass(frozen=True)
class Holder:
    """What a lock file says about the process holding it."""

    host: str
    pid: int
    job: str | None
    token: str
    started: float
    heartbeat: float

    def age(self) -> float:
        return max(0.0, time.time() - self.heartbeat)

    def describe(self) -> str:
        return f"{self.host}, pid {self.pid}, heartbeat {self.age():.0f}s ago"


class Busy(Exception):
    """The run's lock is live: another process trains it. `holder` is None when it changed hands as we looked."""

    def __init__(self, path: Path, holder: Holder | None):
        super().__init__(f"{path} is held by {holder.describe() if holder else 'another process'}")
        self.path, self.holder = path, holder


def lock_path(record: Path) -> Path:
    """The lock of the run whose record is (or will be) at `record`."""
    return Path(record).with_suffix(".lock")


def slurm_job() -> str | None:
    """This SLURM task's identity, unchanged when SLURM requeues it."""
    env = os.environ
    if "SLURM_ARRAY_JOB_ID" in env and "SLURM_ARRAY_TASK_ID" in env:
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID")


def this_process() -> Holder:
    now = time.time()
    return Holder(socket.gethostname(), os.getpid(), slurm_job(), secrets.token_hex(8), now, now)


def read(path: Path) -> Holder | None:
    """The lock's holder, or None when there is no lock. A lock caught between its creation and its one write
    (or damaged) has no content yet: its file's age stands for the heartbeat, so it is live until it is stale."""
    try:
        text = Path(path).read_text()
        modified = Path(path).stat().st_mtime
    except FileNotFoundError:
        return None
    try:
        return Holder(**json.loads(text))
    except (ValueError, TypeError):
        return Holder("?", 0, None, "", modified, modified)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def is_stale(holder: Holder, stale_after: float = STALE_S) -> bool:
    """Whether the lock may be taken over (the rules are in this module's docstring)."""
    if holder.age() > stale_after:
        return True
    if holder.token in _HELD:  # held by this very process
        return False
    me = this_process()
    if holder.host == me.host and (holder.pid == me.pid or not pid_alive(holder.pid)):
        return True
    return holder.job is not None and holder.job == me.job


def encode(holder: Holder) -> bytes:
    return json.dumps(dataclasses.asdict(holder)).encode()


def create(path: Path, holder: Holder) -> bool:
    """Create the lock with O_CREAT|O_EXCL (atomic: of two processes, one wins); False when one exists."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as f:
        f.write(encode(holder))
    return True


def rewrite(path: Path, holder: Holder) -> None:
    """Replace the lock's content at once (temp file + rename: a reader never sees half of it). Not
    benchmark.files: that reads the umask by setting it, which a thread beside the main one must not do."""
    tmp = path.with_name(f".{path.name}.{holder.token}.tmp")
    with os.fdopen(os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o644), "wb") as f:
        f.write(encode(holder))
    os.replace(tmp, path)


def set_aside(path: Path, stale: Holder) -> None:
    """Remove the stale lock `stale`, unless another process took it over since we read it. The lock is moved
    aside first (rename is atomic), so what we remove is exactly what we then read; a lock that turns out
    not to be `stale` is put back (a link never replaces a lock taken meanwhile)."""
    aside = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")  # a temp name: swept if we die here
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    moved = read(aside)
    if moved is not None and moved.token != stale.token:
        try:
            os.link(aside, path)
        except FileExistsError:
            pass
    aside.unlink(missing_ok=True)


class Lock:
    """A held lock: its heartbeat thread runs until release (or the end of a `with` block)."""

    def __init__(self, path: Path, holder: Holder, interval: float):
        self.path, self.holder, self.interval = path, holder, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lock heartbeat {path.name}", daemon=True)
        _HELD.add(holder.token)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            self.refresh()

    def refresh(self) -> None:
        """Write a new heartbeat, unless the lock is no longer ours (taken over while we were hung)."""
        current = read(self.path)
        if current is None or current.token != self.holder.token:
            return
        self.holder = dataclasses.replace(self.holder, heartbeat=time.time())
        try:
            rewrite(self.path, self.holder)
        except OSError:
            pass  # a full disk or a network blip: the next beat tries again, and STALE_S allows for ten misses

    def release(self) -> None:
        self._stop.set()
        self._thread.join()
        current = read(self.path)
        if current is not None and current.token == self.holder.token:
            self.path.unlink(missing_ok=True)
        _HELD.discard(self.holder.token)

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def take(path: Path, interval: float = HEARTBEAT_S, stale_after: float = STALE_S) -> Lock:
    """Hold the lock at `path`, taking over a stale one; Busy when a live process holds it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    me = this_process()
    holder = None
    for _ in range(3):  # the lock may change hands between our looks (released, or taken over by another)
        if create(path, me):
            return Lock(path, me, interval)
        holder = read(path)
        if holder is not None and not is_stale(holder, stale_after):
            raise Busy(path, holder)
        if holder is not None:
            set_aside(path, holder)
    raise Busy(path, holder)


@contextmanager
def take_in_group(path: Path, main: bool = True, agree=lambda busy: [busy]) -> Iterator[Lock | None]:
    """The lock for a group of processes that train one run together (torchrun): the main process alone takes
    it (to the others it would look held elsewhere), and `agree` (an or over the group, called by every process)
    makes all of them raise Busy when it is held elsewhere. Yields the Lock on the main process, else None."""
    held = busy = None
    if main:
        try:
            held = take(path)
        except Busy as e:
            busy = e
    [elsewhere] = agree(busy is not None)
    if elsewhere:
        raise busy or Busy(path, None)
    try:
        yield held
    finally:
        if held is not None:
            held.release()
