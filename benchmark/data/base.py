"""What every suite hands the harness: train / selection / eval sets with roles, and label maps.

A suite is built from one or more dataset adapters. Roles:
- ``train``: what methods fit on;
- ``selection``: held out from train, the only split allowed to tune anything (WiSE alpha, TPGM radii,
  soup membership, early stopping); it is never a reported split;
- eval sets with role ``id`` or ``ood``: what the leaderboard reports.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from benchmark.errors import BenchmarkError

ROLES = ("id", "ood", "selection")
# Segmentation masks: 255 is "void" on disk and in the metric (never scored); datasets hand the loss -100,
# F.cross_entropy's default ignore_index, so every method's plain cross-entropy skips void pixels.
IGNORE = 255
LOSS_IGNORE = -100


class LabelMap:
    """Maps the model's logits (over the training label space) onto an eval set's label space."""

    name = "identity"

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        return logits

    def describe(self) -> str:
        return self.name


class SubsetLabelMap(LabelMap):
    """Eval classes are a subset of the training classes (ImageNet-A/R: 200 of the 1000 logits)."""

    name = "subset"

    def __init__(self, indices: Sequence[int]):
        self.indices = torch.as_tensor(list(indices), dtype=torch.long)

    def __call__(self, logits):
        return logits[:, self.indices.to(logits.device)]

    def describe(self):
        return f"subset of {len(self.indices)} logits"


class MaxPoolLabelMap(LabelMap):
    """Each eval class owns several training classes; its logit is their max (ObjectNet <- ImageNet)."""

    name = "max-pool"

    def __init__(self, groups: Sequence[Sequence[int]]):
        if any(len(g) == 0 for g in groups):
            raise ValueError("every eval class needs at least one source class")
        self.groups = [torch.as_tensor(list(g), dtype=torch.long) for g in groups]

    def __call__(self, logits):
        return torch.stack([logits[:, g.to(logits.device)].max(dim=1).values for g in self.groups], dim=1)

    def describe(self):
        return f"max-pool of {sum(len(g) for g in self.groups)} logits onto {len(self.groups)} classes"


IDENTITY = LabelMap()


@dataclass
class EvalSet:
    name: str
    role: str
    dataset: Dataset
    label_map: LabelMap = IDENTITY
    metric: str = "acc"
    # Column group in tables (e.g. the corruption family of "fog@3"); defaults to the name.
    group: str = ""

    def __post_init__(self):
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {self.role!r}")
        self.group = self.group or self.name


@dataclass
class Suite:
    name: str
    classnames: list[str]
    train: Dataset
    selection: Dataset
    evals: list[EvalSet]
    task: str = "classification"
    notes: dict = field(default_factory=dict)
    # CLIP prompt templates ('{}' marks the class name) for zero-shot heads; empty: the backbone's own.
    templates: tuple[str, ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.classnames)

    @cached_property
    def fingerprint(self) -> str:
        """What the suite was built from, by content: written into every record, so that a record made from
        another copy of the data is never taken for this copy's (see data_fingerprint)."""
        parts = [self.classnames, "train", self.train, "selection", self.selection]
        for e in self.evals:
            parts += [e.name, e.role, e.dataset]
        if self.templates:  # they decide what a zero-shot head scores, as the class names do
            parts += ["templates", list(self.templates)]
        return data_fingerprint(parts)

    def all_evals(self) -> list[EvalSet]:
        """Reported eval sets plus the selection split (scored for every variant, used only to choose)."""
        metric = "miou" if self.task == "segmentation" else "acc"
        return [EvalSet("selection", "selection", self.selection, metric=metric)] + list(self.evals)


class ArrayDataset(Dataset):
    """uint8 HxWx3 images held in memory, transformed lazily (PIL in, tensor out)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Callable):
        if len(images) != len(labels):
            raise ValueError("images and labels differ in length")
        self.images, self.labels, self.transform = images, np.asarray(labels, dtype=np.int64), transform

    def __len__(self):
        return len(self.images)

    def sources(self):
        return self.images, self.labels

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def disjoint_split(n: int, n_holdout: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of range(n) into (rest, holdout); the two never share an index."""
    if not 0 < n_holdout < n:
        raise ValueError(f"holdout size {n_holdout} must be in (0, {n})")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_holdout:]), np.sort(perm[:n_holdout])


def data_fingerprint(parts) -> str:
    """A hash of data by content, cheap enough to take on every run: arrays and tensors by their bytes, files
    by their path below the files' common folder and their size (a stat, never a decode), names by their
    text. Datasets give their parts through a ``sources()`` method. Moving or copying the data keeps the
    fingerprint; a different, repaired or re-sized copy changes it."""
    flat: list = []
    stack = [parts]
    while stack:  # depth first, in order (ImageNet's 1.28M paths would overflow a recursion)
        item = stack.pop()
        if hasattr(item, "sources"):
            stack.append(list(item.sources()))
        elif isinstance(item, torch.utils.data.TensorDataset):
            stack.append(list(item.tensors))
        elif isinstance(item, (list, tuple)):
            stack.extend(reversed(item))
        elif isinstance(item, (Path, str, np.ndarray)):
            flat.append(item)
        elif isinstance(item, torch.Tensor):
            flat.append(item.numpy(force=True))
        else:
            raise TypeError(f"cannot fingerprint a {type(item).__name__}: give it a sources() method")
    paths = [item for item in flat if isinstance(item, Path)]
    root = os.path.commonpath(paths) if paths else ""
    digest = hashlib.sha256()
    for item in flat:
        if isinstance(item, Path):
            try:
                size = item.stat().st_size
            except OSError as e:
                raise BenchmarkError(f"cannot read {item}: {e.strerror}") from None
            digest.update(f"F{os.path.relpath(item, root)}\0{size}\n".encode())
        elif isinstance(item, str):
            digest.update(f"S{item}\n".encode())
        else:
            array = np.ascontiguousarray(item)
            digest.update(f"A{array.shape}{array.dtype.str}\n".encode())
            digest.update(array.view(np.uint8).reshape(-1) if array.size else b"")
    return digest.hexdigest()[:16]
