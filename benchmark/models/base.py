"""What every model family builds: a classifier split into pretrained ``backbone`` and task ``head``."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn
from torchvision import transforms as T

from benchmark.errors import BenchmarkError



class Classifier(nn.Module):
    def __init__(self, backbone: nn.Module, head: nn.Linear):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@dataclass
class Built:
    model: Classifier
    train_transform: Callable
    eval_transform: Callable
    # True when the head was initialised from something meaningful (a zero-shot head): then the
    # untouched model is itself a leaderboard row and WiSE-FT interpolates towards it.
    head_is_pretrained: bool = False
    # Extra objects some methods need (e.g. the CLIP text tower and tokenizer).
    extras: dict[str, Any] = field(default_factory=dict)
    # The classifier the pretrained backbone came with (e.g. ImageNet's 1000 classes), mapping ``model.features``
    # to the pretrained model's own label space: the pretrained *function*, which FSR measures its distance on.
    # Frozen, and not a submodule of ``model``, so no method trains or regularises it and state dicts (checkpoints,
    # `benchmark eval`) are those of the classifier alone. None without pretrained weights, and where the task
    # head is itself the pretraining head (``head_is_pretrained``).
    pretraining_head: nn.Module | None = None

    def __post_init__(self):
        if self.pretraining_head is not None:
            self.pretraining_head.requires_grad_(False).eval()


@dataclass(frozen=True)
class BackboneRequest:
    name: str
    classnames: tuple[str, ...]
    image_size: int
    pretrained: bool = True
    # The suite's CLIP prompt templates ('{}' marks the class name); empty: the family's default.
    templates: tuple[str, ...] = ()

    @property
    def family(self) -> str:
        return self.name.split(":", 1)[0]

    @property
    def arg(self) -> str:
        return self.name.split(":", 1)[1] if ":" in self.name else ""


def simple_transforms(image_size: int, mean, std) -> tuple[Callable, Callable]:
    """Resize-to-square preprocessing for small proxy images (no crop: the object fills the frame)."""
    tf = T.Compose([T.Resize((image_size, image_size), antialias=True), T.ToTensor(), T.Normalize(mean, std)])
    return tf, tf


def load_or_fail(what: str, load: Callable):
    """Run a loader; any failure (offline hub, corrupt or mismatched file) becomes one line naming `what`."""
    try:
        return load()
    except Exception as e:  # noqa: BLE001 - the libraries raise many types; the user needs one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BenchmarkError(f"cannot load {what}: {first}") from e


