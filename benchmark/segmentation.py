"""Semantic segmentation: the mIoU metric, paired image/mask datasets, and the encoder-decoder model.

Metric. A confusion matrix is accumulated over every labelled pixel of an eval set (label 255, the
PASCAL "void"/boundary label, is ignored), then IoU_c = TP_c / (TP_c + FP_c + FN_c) per class and mIoU
is the mean over the classes present in the target or the prediction of that set. A class absent from
both has IoU 0/0: it is excluded from the mean (the usual convention, e.g. mmsegmentation's nanmean).
Multi-Task-Learning-PyTorch's ``SemsegMeter`` scores such a class 0 instead; on a full PASCAL val split every
class occurs, so the two agree there and differ only on small subsets. Pixel accuracy =
correct labelled pixels / labelled pixels.

Targets. Masks hold 255 for "ignore" on disk and in the metric. Datasets hand the loss ``-100``
instead: that is ``F.cross_entropy``'s default ``ignore_index``, so every method's plain
``F.cross_entropy(model(x), y)`` ignores void pixels with no segmentation-specific code.

Model (``deeplab:<encoder>``): DeepLab-v3 (Chen et al. 2017) as Multi-Task-Learning-PyTorch configures its
single-task PASCAL-Context models (configs/pascal/resnet18/semseg.yml: ImageNet ResNet-18, ``dilated: True``
= output stride 8, ``head: deeplab``); TPGM/FTP take their PASCAL data from that project, but which encoder
their papers used was not verified here. The ASPP head is torchvision's DeepLab-v3 head, trained from
scratch; logits are upsampled bilinearly to the input. The encoder is ``backbone``
(pretrained, fine-tuned by the method), the decoder is ``head`` (new), as every method expects.
``deeplab:lite0`` uses the offline EfficientNet-Lite0 ImageNet weights; ``deeplab:resnet50`` /
``deeplab:resnet18`` (any timm ``features_only`` model) fetch timm's weights; ``seg-lite0`` is
``deeplab:lite0`` with a 64- instead of 256-channel ASPP, the CPU proxy suite's default.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import Dataset

from benchmark import corruptions
from benchmark.backbones import BACKBONES, BackboneRequest, Built, lite0_state_dict, simple_transforms
from benchmark.errors import BenchmarkError

IGNORE = 255  # "void" in PASCAL masks; never scored
LOSS_IGNORE = -100  # F.cross_entropy's default ignore_index
# Eval order of the OOD sets: fog first, the corruption TPGM/FTP report on PASCAL, then the usual 14.
CORRUPTIONS = ("fog", *(c for c in corruptions.CORRUPTIONS if c != "fog"))


def resolve_sizes(suite: str, defaults: dict, overrides: dict) -> dict:
    """A segmentation suite's size options: defaults < overrides; unknown keys and corruptions are errors."""
    unknown = set(overrides) - set(defaults)
    if unknown:
        raise BenchmarkError(f"unknown {suite} size option(s) {sorted(unknown)}; valid: {sorted(defaults)}")
    sizes = {**defaults, **overrides}
    for c in sizes["corruptions"]:
        for s in sizes["severities"]:
            corruptions.check(c, s)
    return sizes


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(C, C) int64 counts, rows = target class, columns = predicted class; ignored pixels dropped."""
    target, pred = target.reshape(-1).long(), pred.reshape(-1).long()
    keep = (target >= 0) & (target != IGNORE)
    target, pred = target[keep], pred[keep]
    if target.numel() and int(target.max()) >= num_classes:
        raise BenchmarkError(f"mask label {int(target.max())} out of range for {num_classes} classes (0..{num_classes - 1}, 255 = ignore)")
    return torch.bincount(target * num_classes + pred, minlength=num_classes**2).reshape(num_classes, num_classes).cpu()


def scores(conf: torch.Tensor) -> dict:
    """mIoU, pixel accuracy and per-class IoU (None for classes absent from both target and prediction)."""
    conf = conf.double()
    tp = conf.diag()
    union = conf.sum(0) + conf.sum(1) - tp
    iou = [float(t / u) if u > 0 else None for t, u in zip(tp, union)]
    present = [v for v in iou if v is not None]
    total = conf.sum().item()
    return {"miou": sum(present) / len(present) if present else float("nan"),
            "pixel_acc": tp.sum().item() / total if total else float("nan"), "per_class": iou}  # fmt: skip


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


class SegModel(nn.Module):
    """Pretrained encoder (``backbone``: image -> deepest feature map) + new decoder (``head``)."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.head(self.features(x)), size=x.shape[-2:], mode="bilinear", align_corners=False)


def aspp_rates(image_size: int) -> tuple[int, ...]:
    # DeepLab-v3's rates (12, 24, 36) are for 513-px crops at output stride 8; scaled with the input so
    # the pyramid spans the same fraction of the image on small proxy images (at least 1, distinct).
    scale = image_size / 513
    return tuple(max(i + 1, round(r * scale)) for i, r in enumerate((12, 24, 36)))


def deeplab_head(in_channels: int, num_classes: int, image_size: int, width: int) -> nn.Sequential:
    """torchvision's DeepLabHead (ASPP -> 3x3 conv -> BN -> ReLU -> 1x1 classifier) with a settable width."""
    from torchvision.models.segmentation.deeplabv3 import ASPP

    return nn.Sequential(ASPP(in_channels, aspp_rates(image_size), width), nn.Conv2d(width, width, 3, padding=1, bias=False),
                         nn.BatchNorm2d(width), nn.ReLU(), nn.Conv2d(width, num_classes, 1))  # fmt: skip


def build_deeplab(req: BackboneRequest, encoder_name: str, width: int) -> SegModel:
    import timm

    lite0 = encoder_name == "lite0"
    name = "tf_efficientnet_lite0" if lite0 else encoder_name
    try:
        encoder = timm.create_model(name, pretrained=req.pretrained and not lite0, features_only=True,
                                    output_stride=8, out_indices=(-1,))  # fmt: skip
    except RuntimeError as e:  # unknown timm name, or no features_only support
        raise BenchmarkError(f"{req.name}: timm cannot build {name} as a dilated feature extractor ({e})") from None
    except OSError as e:  # weights neither cached nor downloadable
        raise BenchmarkError(f"{req.name}: pretrained weights for {name} unavailable ({e}); deeplab:lite0 works offline") from None
    if lite0 and req.pretrained:
        own = encoder.state_dict()
        encoder.load_state_dict({k: v for k, v in lite0_state_dict().items() if k in own}, strict=True)
    head = deeplab_head(encoder.feature_info.channels()[-1], len(req.classnames), req.image_size, width)
    return SegModel(encoder, head)


def seg_transforms(encoder_name: str, image_size: int):
    if encoder_name == "lite0":
        return simple_transforms(image_size, (0.5,) * 3, (0.5,) * 3)  # the Lite0 weights' normalisation
    return simple_transforms(image_size, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # timm's ImageNet models


@BACKBONES.register("deeplab", "DeepLab-v3 (dilated pretrained encoder + 256-wide ASPP head): deeplab:lite0 offline, deeplab:resnet50 via timm")
class DeepLab:
    @staticmethod
    def transforms(req: BackboneRequest):
        return seg_transforms(req.arg or "lite0", req.image_size)

    @staticmethod
    def build(req: BackboneRequest) -> Built:
        # 256 channels: DeepLab-v3's (and torchvision's DeepLabHead's) ASPP width.
        return Built(build_deeplab(req, req.arg or "lite0", 256), *DeepLab.transforms(req))


@BACKBONES.register("seg-lite0", "DeepLab-v3 with a 64-wide ASPP on Lite0 (offline): the CPU proxy's segmentation model")
class SegLite0:
    @staticmethod
    def transforms(req: BackboneRequest):
        return seg_transforms("lite0", req.image_size)

    @staticmethod
    def build(req: BackboneRequest) -> Built:
        # 64 channels instead of 256: at 64 px the 256-wide head costs more than the encoder on CPU
        # (measured ~4x slower training steps); the structure is unchanged.
        return Built(build_deeplab(req, "lite0", 64), *SegLite0.transforms(req))
