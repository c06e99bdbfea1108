"""The corrupted-set cache between processes: two builders of one cache keep every manifest entry, and the
workers of a killed builder die with it instead of blocking forever."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.faults  # the fault suite: `pytest -m faults`

ROOT = Path(__file__).resolve().parents[1]
BUILD = """
import sys, numpy as np
from benchmark.corruption.cache import CorruptionCache
clean = np.random.default_rng(0).integers(0, 255, ({n}, 32, 32, 3), dtype=np.uint8)
cache = CorruptionCache(sys.argv[1], clean, shard_size=1)
print("building", flush=True)
cache.build([("{corruption}", 3)], workers={workers}, progress=False)
"""


def builder(directory, n, corruption, workers):
    code = BUILD.format(n=n, corruption=corruption, workers=workers)
    return subprocess.Popen([sys.executable, "-c", code, str(directory)], cwd=ROOT, stdout=subprocess.PIPE, text=True)


def test_two_processes_building_one_cache_keep_every_manifest_entry(tmp_path):
    """Two runs sharing a cache but asking for different corruptions (as two fmnist-c runs with different
    --size corruptions=... do): each used to write back only its own entries, dropping the other's."""
    procs = [builder(tmp_path, 40, corruption, 1) for corruption in ("brightness", "contrast")]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    shards = sorted(p.relative_to(tmp_path).with_suffix("").as_posix() for p in tmp_path.rglob("*.npz"))
    assert len(shards) == 80 and sorted(manifest) == shards


def children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            kids.append(int(stat.parent.name))
    return kids


def alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_workers_die_with_a_killed_builder(tmp_path):
    proc = builder(tmp_path, 400, "glass_blur", 2)
    assert proc.stdout.readline().strip() == "building"
    deadline = time.time() + 60
    while len(workers := children(proc.pid)) < 2 and time.time() < deadline:
        time.sleep(0.2)
    assert len(workers) >= 2, "the builder did not start its workers"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    deadline = time.time() + 20
    while any(alive(w) for w in workers) and time.time() < deadline:
        time.sleep(0.2)
    left = [w for w in workers if alive(w)]
    for w in left:
        os.kill(w, signal.SIGKILL)
    assert not left, "corruption workers outlived their killed parent"


def test_the_cache_is_keyed_on_the_clean_sets_content(tmp_path):
    import numpy as np

    from benchmark.corruption.cache import FileImages, content_key

    images = np.random.default_rng(0).integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
    repaired = images.copy()
    repaired[1, 5, 5, 0] ^= 1  # one pixel of one image: another copy of the data
    assert content_key(images) == content_key(images.copy()) != content_key(repaired)
    assert content_key(list(images)) != content_key(list(repaired))
    paths = [tmp_path / f"{i}.png" for i in range(2)]
    for p in paths:
        p.write_bytes(b"png")
    before = content_key(FileImages(paths))
    paths[0].write_bytes(b"another png")  # replaced by a repaired download
    assert content_key(FileImages(paths)) != before


def test_a_repaired_fashion_mnist_copy_gets_its_own_corrupted_sets(tmp_path, monkeypatch):
    from benchmark.data import fmnist
    from helpers import tiny_run

    monkeypatch.setenv("OODBENCH_CACHE", str(tmp_path / "cache"))
    assert tiny_run(tmp_path / "a") == 0
    load = fmnist.load_split

    def repaired(files, split):
        images, labels = load(files, split)
        return (255 - images, labels) if split == "test" else (images, labels)

    monkeypatch.setattr(fmnist, "load_split", repaired)
    assert tiny_run(tmp_path / "b") == 0
    sets = sorted(p.name for p in (tmp_path / "cache" / "fmnist-c").iterdir())
    assert len(sets) == 2  # one per copy of the data, never shared
