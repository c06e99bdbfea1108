"""Resumable on-disk cache of whole corrupted image sets, for any classification or segmentation suite.

A set of clean images (an HxWx3 uint8 array, or ``FileImages`` for photos on disk, sizes may differ) is
corrupted once per (corruption, severity) in shards of ``shard_size`` images by worker processes; each
shard is one file ``<corruption>-s<k>/<first>-<last>.npz`` written atomically, and ``manifest.json``
records its sha256. On every call, shards that are missing, partial (killed mid-write), not in the
manifest (killed before it was updated) or whose digest differs (bit rot, edited) are redone; the rest
are reused, so an interrupted build resumes where it stopped and no image is corrupted twice.
Image i under (c, k) always gets seed ``image_seed(c, k, i)``, whichever shard or worker runs it.
Only images are corrupted: a segmentation suite keeps its masks as they are (as Cityscapes-C and
PASCAL-C do), so a corrupted variant pairs ``read(c, k)[i]`` with the clean set's mask i.
"""
from __future__ import annotations

import fcntl
import hashlib
import io
import json
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

from benchmark.corruption import corruptions
from benchmark.errors import BenchmarkError
from benchmark.files import atomic_write_bytes


def image_seed(corruption: str, severity: int, index: int) -> int:
    """Per-image seed: stable across runs and machines, distinct for every (corruption, severity, image)."""
    return (corruptions.CORRUPTIONS.index(corruption) * 10 + severity) * 1_000_003 + index


class FileImages:
    """Images on disk read as HxWx3 uint8 RGB; slicing gives a FileImages (cheap to send to a worker)."""

    def __init__(self, paths: Sequence[Path]):
        self.paths = [Path(p) for p in paths]

    def __len__(self):
        return len(self.paths)

    def sources(self):
        return self.paths

    def __getitem__(self, i):
        if isinstance(i, slice):
            return FileImages(self.paths[i])
        try:
            with Image.open(self.paths[i]) as im:
                return np.asarray(im.convert("RGB"))
        except OSError as e:
            raise BenchmarkError(f"cannot read image {self.paths[i]}: {e}") from None


def content_key(clean) -> str:
    """A clean set's name by what it is: its pixels (arrays in memory) or its files' paths, sizes and
    modification times (photos on disk). A cache keyed on it never pairs a different or repaired copy of the
    data with another copy's corrupted sets."""
    digest = hashlib.sha256()
    if isinstance(clean, FileImages):
        for path in clean.paths:
            try:
                st = path.stat()
            except OSError as e:
                raise BenchmarkError(f"cannot read image {path}: {e.strerror}") from None
            digest.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    else:
        for image in (clean if isinstance(clean, list) else [clean]):
            digest.update(repr((image.shape, str(image.dtype))).encode() + np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()[:16]


def limit_threads() -> None:
    """One thread per worker process: parallelism comes from processes, and timings stay per core."""
    import cv2

    cv2.setNumThreads(1)


def start_worker() -> None:
    """A corruption worker: one thread, and killed with its parent. Without the parent-death signal, a
    killed main process leaves its workers blocked on their queue forever, each holding its memory."""
    limit_threads()
    if sys.platform == "linux":
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _encode(images: list[np.ndarray]) -> bytes:
    buf = io.BytesIO()
    if len({im.shape for im in images}) == 1:
        np.savez(buf, images=np.stack(images))
    else:  # different sizes: one flat buffer plus each image's shape
        np.savez(buf, pixels=np.concatenate([im.ravel() for im in images]), shapes=np.array([im.shape for im in images]))
    return buf.getvalue()


def _decode(data: bytes) -> list[np.ndarray] | np.ndarray:
    with np.load(io.BytesIO(data)) as z:
        if "images" in z:
            return z["images"]
        pixels, shapes = z["pixels"], z["shapes"]
    ends = np.cumsum([int(np.prod(s)) for s in shapes])
    return [pixels[e - int(np.prod(s)) : e].reshape(s) for s, e in zip(shapes, ends)]


def _corrupt_shard(job) -> tuple[str, str, int]:
    """Worker: corrupt one shard, write its file atomically; returns (key, sha256, number of images)."""
    path, key, images, first, corruption, severity, seed_fn = job
    out = [corruptions.corrupt(images[j], corruption, severity, seed_fn(corruption, severity, first + j)) for j in range(len(images))]
    data = _encode(out)
    atomic_write_bytes(path, data)
    return key, hashlib.sha256(data).hexdigest(), len(out)


class CorruptionCache:
    """Corrupted variants of one clean image set under ``directory`` (which should encode what the set is)."""

    def __init__(self, directory: Path, clean, shard_size: int | None = None, seed_fn: Callable[[str, int, int], int] = image_seed):
        self.dir = Path(directory)
        self.clean = clean
        self.n = len(clean)
        self.shard_size = max(1, shard_size or self.n)
        self.seed_fn = seed_fn  # must be picklable (a module-level function) for worker processes
        self.manifest_path = self.dir / "manifest.json"

    def shards(self, corruption: str, severity: int) -> list[tuple[str, int, int]]:
        """(key, first, stop) of every shard of one (corruption, severity) set."""
        out = []
        for first in range(0, self.n, self.shard_size):
            stop = min(first + self.shard_size, self.n)
            out.append((f"{corruption}-s{severity}/{first:07d}-{stop - 1:07d}", first, stop))
        return out

    def _manifest(self) -> dict:
        try:
            return json.loads(self.manifest_path.read_text())
        except (OSError, ValueError):
            return {}

    def _record(self, key: str, digest: str) -> None:
        """Add one shard to the manifest under a lock, re-reading it first: another process building the same
        cache at the same time keeps its entries too."""
        with open(self.dir / "manifest.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            manifest = self._manifest()
            manifest[key] = digest
            atomic_write_bytes(self.manifest_path, json.dumps(manifest, indent=0, sort_keys=True).encode())

    def _valid(self, key: str, manifest: dict) -> bool:
        path = self.dir / f"{key}.npz"
        return key in manifest and path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == manifest[key]

    def missing(self, pairs) -> list[tuple[str, int, str, int, int]]:
        """Shards still to build: (corruption, severity, key, first, stop)."""
        manifest = self._manifest()
        return [(c, s, key, a, b) for c, s in pairs for key, a, b in self.shards(c, s) if not self._valid(key, manifest)]

    def build(self, pairs, workers: int = 1, progress: bool = True) -> None:
        """Make every shard of every (corruption, severity) in ``pairs`` present and valid."""
        for c, s in pairs:
            corruptions.check(c, s)
        todo = self.missing(pairs)
        if not todo:
            return
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # e.g. $OODBENCH_CACHE names a file, or a folder this user cannot write
            raise BenchmarkError(f"cannot create the corrupted-set cache {self.dir}: {e.strerror}; "
                                 f"point OODBENCH_CACHE at a writable folder") from None  # fmt: skip
        sizes = {key: b - a for _, _, key, a, b in todo}
        bar = tqdm(total=sum(sizes.values()), unit="img", disable=not progress, smoothing=0.1,
                   desc=f"corrupting {self.n} images x {len({(c, s) for c, s, *_ in todo})} sets")  # fmt: skip
        jobs = iter([(self.dir / f"{key}.npz", key, self.clean[a:b], a, c, s, self.seed_fn) for c, s, key, a, b in todo])
        pool = ProcessPoolExecutor(workers, initializer=start_worker) if workers > 1 else None
        try:
            if pool is None:
                limit_threads()
                results = map(_corrupt_shard, jobs)
            else:
                results = _bounded_map(pool, _corrupt_shard, jobs, 2 * workers)
            for key, digest, count in results:
                self._record(key, digest)
                bar.update(count)
        finally:
            if pool:
                pool.shutdown(cancel_futures=True)
            bar.close()

    def read(self, corruption: str, severity: int) -> list[np.ndarray] | np.ndarray:
        """The whole corrupted set (built or verified first by ``build``): an (N, H, W, 3) array when all
        images share a size, else a list."""
        parts = []
        manifest = self._manifest()
        for key, _, _ in self.shards(corruption, severity):
            path = self.dir / f"{key}.npz"
            data = path.read_bytes() if path.is_file() else b""
            if hashlib.sha256(data).hexdigest() != manifest.get(key):
                raise BenchmarkError(f"corrupted-set cache file {path} is missing or damaged; run again to rebuild it")
            parts.append(_decode(data))
        if all(isinstance(p, np.ndarray) for p in parts):
            return np.concatenate(parts)
        return [im for p in parts for im in p]

    def load(self, pairs, workers: int = 1, progress: bool = True) -> dict[tuple[str, int], np.ndarray | list]:
        self.build(pairs, workers, progress)
        return {(c, s): self.read(c, s) for c, s in pairs}


def _bounded_map(pool, fn, jobs, window: int):
    """pool.map that keeps at most ``window`` jobs in flight (bounded memory) and yields in completion order."""
    pending = set()
    for job in jobs:
        pending.add(pool.submit(fn, job))
        if len(pending) >= window:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            yield from (f.result() for f in done)
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        yield from (f.result() for f in done)

