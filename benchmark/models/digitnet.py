"""``digitnet``: a small GroupNorm CNN pretrained on rendered digits, the ``digits`` suite's backbone.

Its weights ship in the package (benchmark/models/assets/digitnet.pt, checksum below) and are regenerated
by ``python -m benchmark pretrain`` (benchmark/harness/pretrain.py). Its head is the pretraining head, over
the same ten classes as the suite: the untouched model is a zero-shot row, WiSE-FT interpolates from it, and
FSR's distance is measured on its outputs. ``digitnet:path/to/weights.pt`` loads another file (e.g. a
regenerated one); ``--no-pretrained`` (random init) gives a fresh head.

GroupNorm rather than BatchNorm: no running statistics, so a model's function never depends on batch
composition, and nothing needs re-estimating after weight-space interpolation (WiSE-FT, soups).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from benchmark.errors import BenchmarkError
from benchmark.models import BACKBONES
from benchmark.models.base import BackboneRequest, Built, Classifier, load_or_fail, simple_transforms

WIDTH = 24
CLASSES = tuple(str(d) for d in range(10))
SHIPPED = Path(__file__).parent / "assets" / "digitnet.pt"
# sha256 of the shipped weights; `benchmark pretrain` prints the one of the file it writes.
SHIPPED_SHA256 = "fc868630ef30b0f41cbf69d3d844efb2f0357794f0e63d3a954e227d1cdf716a"
MEAN = STD = (0.5, 0.5, 0.5)


def features(width: int = WIDTH) -> nn.Sequential:
    """32 px -> 4*width features: three stages of two 3x3 conv + GroupNorm + ReLU, pooled between."""
    def block(c_in, c_out):
        return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.GroupNorm(4, c_out), nn.ReLU(inplace=True)]

    return nn.Sequential(*block(3, width), *block(width, width), nn.MaxPool2d(2),
                         *block(width, 2 * width), *block(2 * width, 2 * width), nn.MaxPool2d(2),
                         *block(2 * width, 4 * width), *block(4 * width, 4 * width),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten())  # fmt: skip


def digitnet(width: int = WIDTH, classes: int = len(CLASSES)) -> Classifier:
    return Classifier(features(width), nn.Linear(4 * width, classes))


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_weights(path: Path, expected_sha256: str | None) -> dict[str, torch.Tensor]:
    """The state dict in `path`; the shipped file must match its checksum (a damaged copy is refused)."""
    if not Path(path).is_file():
        raise BenchmarkError(f"digitnet weights {path} not found; regenerate them with `python -m benchmark pretrain`")
    if expected_sha256 and sha256(path) != expected_sha256:
        raise BenchmarkError(f"digitnet weights {path} are damaged (sha256 differs from the shipped file's); reinstall "
                             "the package or regenerate them with `python -m benchmark pretrain`")  # fmt: skip
    return load_or_fail(f"digitnet weights {path}", lambda: torch.load(path, map_location="cpu", weights_only=True))


@BACKBONES.register("digitnet", "GroupNorm CNN pretrained on rendered digits (shipped weights; digitnet:FILE for others)")
class DigitNet:
    @staticmethod
    def transforms(req: BackboneRequest):
        return simple_transforms(req.image_size, MEAN, STD)

    @staticmethod
    def build(req: BackboneRequest) -> Built:
        path = Path(req.arg) if req.arg else SHIPPED
        own_head = req.pretrained and tuple(req.classnames) == CLASSES
        model = digitnet()
        if req.pretrained:
            state = load_weights(path, None if req.arg else SHIPPED_SHA256)
            try:
                model.load_state_dict(state, strict=True)
            except RuntimeError as e:
                raise BenchmarkError(f"digitnet weights {path} do not fit the architecture: {str(e).splitlines()[0]}") from None
        pretraining_head = None
        if not own_head:  # another label set (or random init): a new task head; the digits head stays beside it
            pretraining_head = model.head if req.pretrained else None
            model.head = nn.Linear(model.head.in_features, len(req.classnames))
        return Built(model, *DigitNet.transforms(req), head_is_pretrained=own_head, pretraining_head=pretraining_head)
