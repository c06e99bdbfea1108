"""DeepLab-v3 segmentation models (``deeplab:<encoder>``, ``seg-lite0``).

DeepLab-v3 (Chen et al. 2017) as Multi-Task-Learning-PyTorch configures its single-task PASCAL-Context
models (configs/pascal/resnet18/semseg.yml: ImageNet ResNet-18, ``dilated: True`` = output stride 8,
``head: deeplab``); TPGM/FTP take their PASCAL data from that project, but which encoder their papers used
was not verified here. The ASPP head is torchvision's DeepLab-v3 head, trained from scratch; logits are
upsampled bilinearly to the input. The encoder is ``backbone`` (pretrained, fine-tuned by the method), the
decoder is ``head`` (new), as every method expects. ``deeplab:lite0`` uses the offline EfficientNet-Lite0
ImageNet weights; ``deeplab:resnet50`` / ``deeplab:resnet18`` (any timm ``features_only`` model) fetch timm's
weights; ``seg-lite0`` is ``deeplab:lite0`` with a 64- instead of 256-channel ASPP, the CPU proxy suite's
default.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.errors import BenchmarkError
from benchmark.models import BACKBONES
from benchmark.models.base import BackboneRequest, Built, simple_transforms
from benchmark.models.cnn import lite0_state_dict


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
