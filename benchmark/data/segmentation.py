"""Segmentation data: paired image/mask datasets (masks' 255 "void" becomes the loss's ignore label -100,
see benchmark/data/base.py) and the order of the corrupted eval sets."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from benchmark.corruption import corruptions
from benchmark.data.base import IGNORE, LOSS_IGNORE
from benchmark.errors import BenchmarkError

# Eval order of the OOD sets: fog first, the corruption TPGM/FTP report on PASCAL, then the usual 14.
CORRUPTIONS = ("fog", *(c for c in corruptions.CORRUPTIONS if c != "fog"))


def check_corruptions(sizes: dict) -> None:
    """Every requested (corruption, severity) exists; one-line error otherwise."""
    for c in sizes["corruptions"]:
        for s in sizes["severities"]:
            corruptions.check(c, s)



def mask_tensor(mask: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """uint8 HxW mask -> int64 tensor resized (nearest) to `size` = (H, W), 255 mapped to the loss ignore."""
    if mask.shape != size:
        mask = np.asarray(Image.fromarray(mask).resize(size[::-1], Image.NEAREST))
    y = torch.from_numpy(mask.astype(np.int64))
    y[y == IGNORE] = LOSS_IGNORE
    return y


class SegDataset(Dataset):
    """Images (HxWx3 uint8) and masks (HxW uint8) from two index-aligned sequences (arrays or lazy readers).

    The image goes through the backbone's transform; the mask follows it to the same size (nearest), so
    any backbone preprocessing works. ``flip``: joint random horizontal flip (training augmentation).
    """

    def __init__(self, images: Sequence, masks: Sequence, transform, flip: bool = False):
        if len(images) != len(masks):
            raise ValueError("images and masks differ in length")
        self.images, self.masks, self.transform, self.flip = images, masks, transform, flip

    def sources(self):
        return self.images, self.masks

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        image, mask = self.images[i], self.masks[i]
        if image.shape[:2] != mask.shape:
            raise BenchmarkError(f"image {i} is {image.shape[1]}x{image.shape[0]} but its mask is {mask.shape[1]}x{mask.shape[0]}")
        if self.flip and torch.rand(()) < 0.5:
            image, mask = image[:, ::-1], mask[:, ::-1]
        x = self.transform(Image.fromarray(np.ascontiguousarray(image)))
        return x, mask_tensor(np.ascontiguousarray(mask), tuple(x.shape[-2:]))


