"""Batches and precision: the DataLoader every part of a run uses, and autocast on GPU."""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(device: torch.device):
    # bf16 autocast on GPU (no loss scaling needed); full precision on CPU, where it is not faster.
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


def loader(dataset, batch_size: int, shuffle=False, generator=None, workers: int = 0) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator,
                      num_workers=workers, pin_memory=torch.cuda.is_available(), drop_last=False)  # fmt: skip
