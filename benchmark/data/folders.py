"""Shared pieces of the image-folder adapters (ImageNet and its variants, DomainNet).

Listing class folders as torchvision's ``make_dataset`` does (explicit class -> index maps, so nothing
depends on how folder names sort), once: the listing is cached (see file_index); cheap count checks, and
full decode checks for ``benchmark prepare``.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension
from tqdm import tqdm

from benchmark.errors import BenchmarkError
from benchmark.files import atomic_write_bytes
from benchmark.resources import cache_root

# Missing or extra images allowed before a count check fails: a re-encoded or partly re-downloaded
# copy may differ by a handful of files; anything larger is the wrong or a partial copy.
COUNT_TOLERANCE = 0.005
# Part of every index's cache key: a change in what an index holds makes new files, never misread old ones.
INDEX_FORMAT = 1
# A folder modified this shortly before its scan began may change again within its mtime's resolution
# (a kernel clock tick, or seconds on some network filesystems) unseen: such a listing is used, not cached.
SETTLE_NS = 2_000_000_000


def scan_classes(root: Path, class_to_idx: dict[str, int], title: str) -> list[tuple[str, int]]:
    """(path, label) for every image under root/<folder>/, labels from the explicit map.

    Missing or empty class folders are an error naming the first few; folders not in the map are ignored
    (ObjectNet ships 313 folders of which 113 are ImageNet classes).
    """
    missing = [c for c in class_to_idx if not (root / c).is_dir()]
    if len(missing) == len(class_to_idx):
        raise BenchmarkError(
            f"{title} at {root} has none of the {len(missing)} class folders it needs (e.g. {', '.join(missing[:3])}): "
            f"wrong folder, or images not sorted into class folders"
        )
    if missing:
        raise BenchmarkError(
            f"{title} at {root} is partial: {len(missing)} of {len(class_to_idx)} class folders missing "
            f"(e.g. {', '.join(missing[:3])})"
        )
    samples = file_index(root, class_to_idx)
    counts = np.bincount([y for _, y in samples], minlength=max(class_to_idx.values()) + 1)
    empty = [c for c, i in class_to_idx.items() if counts[i] == 0]
    if empty:
        raise BenchmarkError(f"{title} at {root}: {len(empty)} class folders hold no images (e.g. {', '.join(empty[:3])})")
    return samples


def file_index(root: Path, class_to_idx: dict[str, int]) -> list[tuple[str, int]]:
    """(path, label) for every image under root/<class folder>/, as ``make_dataset`` lists them, scanned once.

    The listing is cached under the cache dir, keyed by the root's path and the class map, and stamped with
    every scanned folder's mtime and size (a stat per folder, not per file: adding, removing or renaming a
    file changes its folder's mtime); a changed stamp, or a damaged index, means a new scan.
    """
    top = os.path.expanduser(str(root))
    path = index_path(top, class_to_idx)
    index = read_index(path, top)
    if index is None:
        started = time.time_ns()
        index = scan_folders(top, class_to_idx)
        if np.all(index["stamps"][:, 0] < started - SETTLE_NS):
            atomic_write_bytes(path, index_bytes(index))
    prefix = os.path.join(top, "")
    return [(prefix + f, y) for f, y in zip(index["files"], index["labels"].tolist())]


def index_path(top: str, class_to_idx: dict[str, int]) -> Path:
    key = json.dumps([INDEX_FORMAT, str(Path(top).resolve()), sorted(class_to_idx.items()), IMG_EXTENSIONS])
    return cache_root() / "file-index" / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.npz"


def scan_folders(top: str, class_to_idx: dict[str, int]) -> dict:
    """make_dataset's walk (sorted classes, sorted os.walk, sorted names, by extension), keeping paths relative
    to `top`, and every folder it walked with its stamp."""
    prefix = os.path.join(top, "")
    files, labels, folders = [], [], []
    for name in sorted(class_to_idx):
        for folder, _, names in sorted(os.walk(os.path.join(top, name), followlinks=True)):
            relative = folder[len(prefix):]
            folders.append(relative)
            kept = [f"{relative}{os.sep}{f}" for f in sorted(names) if has_file_allowed_extension(f, IMG_EXTENSIONS)]
            files += kept
            labels += [class_to_idx[name]] * len(kept)
    return {"files": files, "labels": np.asarray(labels, dtype=np.int64), "folders": folders,
            "stamps": folder_stamps(top, folders)}  # fmt: skip


def folder_stamps(top: str, folders: list[str]) -> np.ndarray:
    """(mtime in ns, size) of each folder; the size counts entries where the filesystem reports it so."""
    stats = [os.stat(os.path.join(top, f)) for f in folders]
    return np.asarray([(s.st_mtime_ns, s.st_size) for s in stats], dtype=np.int64).reshape(-1, 2)


def index_bytes(index: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, files=_joined(index["files"]), labels=index["labels"], folders=_joined(index["folders"]),
             stamps=index["stamps"])  # fmt: skip
    return buffer.getvalue()


def read_index(path: Path, top: str) -> dict | None:
    """The cached index at `path` if it is readable and no folder it scanned has changed since; else None."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            index = {"files": _split(saved["files"]), "labels": saved["labels"], "folders": _split(saved["folders"]),
                     "stamps": saved["stamps"]}  # fmt: skip
    except Exception:  # noqa: BLE001 - missing, truncated, garbled or not an index: a new scan replaces it
        return None
    if len(index["files"]) != len(index["labels"]) or len(index["folders"]) != len(index["stamps"]):
        return None
    try:
        current = folder_stamps(top, index["folders"])
    except OSError:  # a scanned folder is gone
        return None
    return index if np.array_equal(current, index["stamps"]) else None


def _joined(names: list[str]) -> np.ndarray:
    # NUL cannot occur in a file name; surrogateescape keeps names that are not valid UTF-8 as they are.
    return np.frombuffer("\0".join(names).encode("utf-8", "surrogateescape"), dtype=np.uint8)


def _split(blob: np.ndarray) -> list[str]:
    text = blob.tobytes().decode("utf-8", "surrogateescape")
    return text.split("\0") if text else []


def check_count(title: str, found: int, expected: int, tolerance: float = COUNT_TOLERANCE) -> str:
    """One report line; a BenchmarkError when found is off by more than the tolerance."""
    if abs(found - expected) > tolerance * expected:
        raise BenchmarkError(
            f"{title} has {found} images, expected {expected} (tolerance {tolerance:.1%}): wrong or partial copy"
        )
    return f"{title}: {found} images (card: {expected})"


def load_rgb(path: str, crop: int = 0) -> Image.Image:
    """Decode to RGB, optionally cutting `crop` pixels off every side; unreadable files -> one-line error."""
    try:
        with open(path, "rb") as f:
            img = Image.open(f)
            img = img.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise BenchmarkError(f"cannot read image {path}: {e}") from None
    if crop:
        img = img.crop((crop, crop, img.width - crop, img.height - crop))
    return img


class ImageListDataset(Dataset):
    """(path, label) samples decoded lazily; `crop` trims a border before the backbone transform."""

    def __init__(self, samples: Sequence[tuple[str, int]], transform: Callable, crop: int = 0):
        self.samples, self.transform, self.crop = list(samples), transform, crop
        self.targets = [y for _, y in self.samples]

    def __len__(self):
        return len(self.samples)

    def sources(self):
        return [Path(p) for p, _ in self.samples], np.asarray(self.targets, dtype=np.int64)

    def __getitem__(self, i):
        path, label = self.samples[i]
        return self.transform(load_rgb(path, self.crop)), label


def subsample(samples: list, n_max: int | None, seed: int) -> list:
    """A seeded subset of at most n_max samples, kept in their original order (None: all)."""
    if n_max is None or n_max >= len(samples):
        return samples
    keep = np.sort(np.random.default_rng(seed).permutation(len(samples))[:n_max])
    return [samples[i] for i in keep]


def _decode_error(path: str) -> str | None:
    try:
        with Image.open(path) as img:
            # JPEG: decode at 1/8 scale; still reads the whole entropy-coded stream, so truncation shows.
            img.draft("RGB", (max(1, img.width // 8), max(1, img.height // 8)))
            img.load()
    except (OSError, UnidentifiedImageError, ValueError) as e:
        return f"{path}: {e}"
    return None


def verify_images(paths: Sequence[str], title: str, progress: bool = True) -> list[str]:
    """Decode every image (what `prepare` does); returns 'path: error' for each unreadable one.

    Threads, because PIL releases the GIL while decoding (ImageNet train: 1.28M files).
    """
    with ThreadPoolExecutor(min(16, os.cpu_count() or 1)) as pool:
        results = pool.map(_decode_error, paths, chunksize=64)
        bar = tqdm(results, total=len(paths), desc=f"decoding {title}", unit="img", disable=not progress, leave=False)
        return [r for r in bar if r]


def parse_choice(value, valid: Sequence[str], key: str) -> list[str]:
    """A --size value naming several items: a list/tuple, or 'a,b,c' (the CLI passes unparsed text)."""
    items = [value] if isinstance(value, str) else list(value)
    names = [s.strip().strip("()[]'\" ") for item in items for s in str(item).split(",")]
    names = [n for n in names if n]
    unknown = [n for n in names if n not in valid]
    if unknown or not names:
        raise BenchmarkError(f"{key}={value!r}: unknown or empty {unknown}; valid: {', '.join(valid)}")
    return names
