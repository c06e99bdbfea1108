"""Tiny on-disk copies of the ImageNet-family and DomainNet layouts, plus a model whose logits are known.

Every image is a flat colour that encodes a class index (hundreds, tens and units digits in R, G, B, each
as digit * 25 + 12, which survives JPEG), so `OracleModel` recovers the class from pixels alone and the
tests can predict exactly what accuracy each label map must give. Builders take a directory and return
the data root to pass as --data-root, with the matching --size options in *_FIXTURE_SIZES (the label
space restricted to the fixture's classes; the adapters' documented options, not a test-only path).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

from benchmark.data import SuiteOptions, build_suite, domainnet, imagenet
from benchmark.engine import accuracy, predict

TO_TENSOR = transforms.ToTensor()  # what OracleModel reads: no resize, no normalisation

# ImageNet indices chosen so that: their V2 folder names sort differently as strings ("10" < "2");
# 6, 11, 530, 954 are in ImageNet-A; 1, 2, 6, 11, 100, 954 in ImageNet-R; 409 + 530 are ObjectNet's
# alarm_clock (two ImageNet classes max-pooled), 954 its banana; 10 is in none of A, R, ObjectNet.
IMAGENET_FIXTURE_INDICES = (1, 2, 6, 10, 11, 100, 409, 530, 954)
OUTSIDER = 10
# DomainNet labels: first two, the cello / cell_phone pair that ASCII sorting would swap, one capitalised.
DOMAINNET_FIXTURE_LABELS = (0, 1, 66, 67, 308)
OBJECTNET_UNMAPPED_FOLDER = "air_freshener"  # an ObjectNet class with no ImageNet counterpart


def imagenet_fixture_sizes(indices: Sequence[int] = IMAGENET_FIXTURE_INDICES) -> dict:
    wnids = imagenet.imagenet_wnids()
    return {"wnids": ",".join(wnids[i] for i in indices), "selection_per_class": 1}


def domainnet_fixture_sizes(labels: Sequence[int] = DOMAINNET_FIXTURE_LABELS) -> dict:
    return {"classes": ",".join(domainnet.classes()[i] for i in labels)}


def fixture_suite(name: str, root: Path, **sizes):
    """Build suite `name` on a fixture tree with raw-pixel transforms and the fixture's --size options."""
    defaults = {"imagenet": imagenet_fixture_sizes, "domainnet": domainnet_fixture_sizes}[name]()
    opts = SuiteOptions(data_root=root, train_transform=TO_TENSOR, eval_transform=TO_TENSOR,
                        sizes={**defaults, **sizes}, progress=False)  # fmt: skip
    return build_suite(name, opts)


def score(model, eval_set) -> float:
    """Top-1 accuracy of `model` on an EvalSet through its label map, as the harness computes it."""
    return accuracy(*predict(model, eval_set.dataset, eval_set.label_map, torch.device("cpu"), batch_size=64))


def colour(index: int) -> tuple[int, int, int]:
    return tuple(int(d) * 25 + 12 for d in f"{index:03d}")  # type: ignore[return-value]


def write_image(path: Path, index: int, size: int = 8, border: int = 0) -> None:
    """A flat image encoding `index`; `border` px of pure red around it (ObjectNet's frame)."""
    arr = np.empty((size + 2 * border, size + 2 * border, 3), dtype=np.uint8)
    arr[:] = (255, 0, 0)
    arr[border : border + size, border : border + size] = colour(index)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".png":
        Image.fromarray(arr).save(path)
    else:
        Image.fromarray(arr).save(path, format="JPEG", quality=95, subsampling=0)


def decode(x: torch.Tensor) -> torch.Tensor:
    """Batch of ToTensor images -> the encoded class index of each (mean colour, so borders spoil it)."""
    digits = (x.mean(dim=(2, 3)) * 255 // 25).long().clamp(0, 9)
    return digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2]


class OracleModel(torch.nn.Module):
    """Logit 10 on the class an image encodes (if in the label space), 0 elsewhere; optionally logit 20
    on a fixed `distractor` class, which wins unless a label map drops it."""

    def __init__(self, label_space: Sequence[int], distractor: int | None = None):
        super().__init__()
        self.position = {g: i for i, g in enumerate(label_space)}
        self.n, self.distractor = len(label_space), distractor

    def forward(self, x):
        logits = torch.zeros(len(x), self.n)
        for row, g in enumerate(decode(x).tolist()):
            if g in self.position:
                logits[row, self.position[g]] = 10.0
        if self.distractor is not None:
            logits[:, self.position[self.distractor]] = 20.0
        return logits


def build_imagenet_tree(root: Path, indices: Sequence[int] = IMAGENET_FIXTURE_INDICES, train_per_class: int = 4,
                        eval_per_class: int = 2,
                        variants: Sequence[str] = ("imagenet", "v2", "a", "r", "sketch", "objectnet")) -> Path:
    """Write the real folder layouts (for the given ImageNet class indices) under root; return root."""
    root = Path(root)
    wnids = imagenet.imagenet_wnids()
    subsets = {k: set(imagenet.subset_wnids(k)) for k in ("a", "r")}
    for i in indices:
        w = wnids[i]
        if "imagenet" in variants:
            for k in range(train_per_class):
                write_image(root / "imagenet" / "train" / w / f"{w}_{k}.JPEG", i)
            for k in range(eval_per_class):
                write_image(root / "imagenet" / "val" / w / f"ILSVRC2012_val_{i:05d}{k}.JPEG", i)
        for k in range(eval_per_class):
            if "v2" in variants:
                write_image(root / "imagenetv2-matched-frequency-format-val" / str(i) / f"{k}.jpeg", i)
            if "sketch" in variants:
                write_image(root / "sketch" / w / f"sketch_{k}.JPEG", i)
            for key in ("a", "r"):
                if key in variants and w in subsets[key]:
                    write_image(root / f"imagenet-{key}" / w / f"{key}_{k}.jpg", i)
    if "objectnet" in variants:
        images = root / "objectnet-1.0" / "images"
        chosen = set(indices)
        for folder, group in imagenet.objectnet_to_imagenet().items():
            members = [g for g in group if g in chosen]
            for k in range(eval_per_class * len(members)):
                write_image(images / folder / f"{k}.png", members[k % len(members)], border=imagenet.OBJECTNET_BORDER)
        for k in range(eval_per_class):
            write_image(images / OBJECTNET_UNMAPPED_FOLDER / f"{k}.png", indices[0], border=imagenet.OBJECTNET_BORDER)
    return root


def build_domainnet_tree(root: Path, labels: Sequence[int] = DOMAINNET_FIXTURE_LABELS, train_per_class: int = 10,
                         test_per_class: int = 2, domains: Sequence[str] = domainnet.DOMAINS) -> Path:
    """<root>/domainnet/<domain>/<class>/*.jpg plus official-format split files; returns root."""
    base = Path(root) / "domainnet"
    names = domainnet.classes()
    for domain in domains:
        for split, per_class in (("train", train_per_class), ("test", test_per_class)):
            lines = []
            for label in labels:
                for k in range(per_class):
                    rel = f"{domain}/{names[label]}/{domain}_{label:03d}_{split}{k:02d}.jpg"
                    write_image(base / rel, label)
                    lines.append(f"{rel} {label}")
            base.mkdir(parents=True, exist_ok=True)
            (base / f"{domain}_{split}.txt").write_text("\n".join(lines) + "\n")
    return Path(root)
