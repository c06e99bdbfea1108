"""Shared pieces of the image-folder adapters (ImageNet and its variants, DomainNet).

Listing class folders with torchvision's ``make_dataset`` (explicit class -> index maps, so nothing
depends on how folder names sort), cheap count checks, and full decode checks for ``benchmark prepare``.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset
from tqdm import tqdm

from benchmark.errors import BenchmarkError

# Missing or extra images allowed before a count check fails: a re-encoded or partly re-downloaded
# copy may differ by a handful of files; anything larger is the wrong or a partial copy.
COUNT_TOLERANCE = 0.005


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
    samples = make_dataset(str(root), class_to_idx, extensions=IMG_EXTENSIONS, allow_empty=True)
    counts = np.bincount([y for _, y in samples], minlength=max(class_to_idx.values()) + 1)
    empty = [c for c, i in class_to_idx.items() if counts[i] == 0]
    if empty:
        raise BenchmarkError(f"{title} at {root}: {len(empty)} class folders hold no images (e.g. {', '.join(empty[:3])})")
    return samples


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
