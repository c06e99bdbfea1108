"""What a method sees of its run: the loaders and their worker count, the device, and (if it asks) the frozen
pretrained model."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn


def frozen_copy(model: nn.Module) -> nn.Module:
    """A frozen eval-mode copy of `model`: the pretrained reference that regularisers measure against."""
    ref = copy.deepcopy(model).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


@dataclass
class RunContext:
    train_loader: Any
    selection_loader: Any
    device: torch.device
    num_classes: int
    suite: str
    seed: int
    extras: dict = field(default_factory=dict)
    head_is_pretrained: bool = False
    # The run's checkpoint file: a method that trains more than once (model soups) keeps its own beside it.
    checkpoint: Path | None = None
    progress: bool = True
    # The one frozen copy of the model as it was before training, made by the harness when the run starts
    # for methods that declare `needs_reference`; None for the others (they hold no extra copy).
    reference: nn.Module | None = None
    # Worker processes of every loader the run builds (training, evaluation, probe features, BN re-estimation,
    # held-out batches): `--workers`; 0 loads in this process. Results do not depend on it.
    workers: int = 0
    # The backbone's frozen pretraining head on the run's device (benchmark.models.base.Built.pretraining_head).
    pretraining_head: nn.Module | None = None
