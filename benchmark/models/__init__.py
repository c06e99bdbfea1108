"""Pretrained vision models, one family per module, all behind one registry.

Every family returns a :class:`~benchmark.models.base.Built` whose ``model`` has ``.backbone`` (features)
and ``.head`` (the task head). Methods rely only on that split: parameters named ``head.*`` are the task
head, everything else is pretrained.

Names are ``family`` or ``family:arg`` (``lite0``, ``timm:resnet50``, ``clip:ViT-B-32/openai``).
A family is registered as a class with two static methods: ``transforms(request)`` (cheap: no weights
are loaded, so a suite can be built before the model) and ``build(request)``.
"""
from __future__ import annotations

from typing import Callable

from benchmark.registry import Registry

# The families, in the order `benchmark list` shows them; each module registers its own.
BACKBONES: Registry[type] = Registry("backbone", modules=(
    "benchmark.models.cnn", "benchmark.models.clip", "benchmark.models.deeplab", "benchmark.models.digitnet",
))  # fmt: skip


def create_backbone(name: str, classnames, image_size: int, pretrained: bool = True, templates=()):
    """`templates`: the suite's CLIP prompt templates (Suite.templates), for zero-shot heads."""
    from benchmark.models.base import BackboneRequest

    request = BackboneRequest(name, tuple(classnames), image_size, pretrained, tuple(templates))
    return BACKBONES.get(request.family).build(request)


def backbone_transforms(name: str, image_size: int) -> tuple[Callable, Callable]:
    """(train, eval) preprocessing of a backbone, without loading it."""
    from benchmark.models.base import BackboneRequest

    request = BackboneRequest(name, (), image_size)
    return BACKBONES.get(request.family).transforms(request)
