"""Run configuration. The run id is a hash of everything that changes the result (not of paths)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from benchmark.errors import BenchmarkError

# Training recipe per suite; methods override keys through their RECIPES. Sources in comments.
SUITE_RECIPES: dict[str, dict] = {
    # Embedded default, sized for 10 minutes on 2 CPU cores (../shared/notes/environment.md measured
    # 2 epochs on 2000 images at 64 px: clean ~0.85). SGD+momentum as in the TPGM DomainNet recipe. FT
    # check on ID only: lr 0.01 with clipping at 1.0 reached 60% clean, lr 0.05 unclipped 86%.
    "fmnist-c": {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4,
                 "epochs": 2, "batch_size": 32, "warmup_steps": 0, "grad_clip": 0.0, "eval_batch_size": 250},
    # Segmentation proxy: MTL-PyTorch's Adam family and weight decay (PASCAL recipe below) at 10x its lr for
    # a 2-epoch CPU schedule. Measured here (800 images, 2 epochs, FT): SGD lr 0.01 clipped at 1.0 predicted
    # background everywhere (mIoU 0.075); AdamW lr 1e-3 reached val mIoU 0.225.
    "segproxy": {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4, "epochs": 2, "batch_size": 32,
                 "warmup_steps": 0, "grad_clip": 1.0, "eval_batch_size": 100},
    # PASCAL: Multi-Task-Learning-PyTorch's single-task recipe (configs/pascal/resnet18/{semseg,human_parts}.yml:
    # Adam lr 1e-4, weight decay 1e-4, 60 epochs, batch 12, no clipping; its "poly" decay is cosine here).
    **{name: {"optimizer": "adamw", "lr": 1e-4, "weight_decay": 1e-4, "epochs": 60, "batch_size": 12,
              "warmup_steps": 0, "grad_clip": 0.0, "eval_batch_size": 12}
       for name in ("pascal-context", "pascal-parts", "pascal-voc")},
    # CLIP fine-tuning on ImageNet, WiSE-FT's recipe (github.com/mlfoundations/wise-ft defaults; notes/protocols.md):
    # AdamW lr 3e-5, wd 0.1, batch 512, 10 epochs, 500 warm-up steps then cosine, gradient norm clipped at 1.0
    # (src/models/finetune.py).
    **{name: {"optimizer": "adamw", "lr": 3e-5, "weight_decay": 0.1, "epochs": 10, "batch_size": 512,
              "warmup_steps": 500, "grad_clip": 1.0, "eval_batch_size": 512}
       for name in ("imagenet", "imagenet-c")},
}  # fmt: skip
GENERIC_RECIPE = {"optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4,
                  "epochs": 10, "batch_size": 64, "warmup_steps": 0, "grad_clip": 1.0, "eval_batch_size": 256}  # fmt: skip

SUITE_DEFAULTS: dict[str, dict] = {
    "fmnist-c": {"backbone": "lite0", "image_size": 64,
                 "methods": ["ft", "lp", "lp-ft", "wise-ft", "l2-sp", "tpgm", "fsr"]},
    # Segmentation: methods whose loss and variants are defined per pixel (not LP, LP-FT, FLYP, zero-shot).
    "segproxy": {"backbone": "seg-lite0", "image_size": 64, "methods": ["ft", "l2-sp", "tpgm", "ftp"]},
    # MTL-PyTorch's model: dilated ResNet-18 + DeepLab-v3 ASPP head, 512x512 inputs (its FixedResize).
    **{name: {"backbone": "deeplab:resnet18", "image_size": 512, "methods": ["ft", "l2-sp", "tpgm", "ftp"]}
       for name in ("pascal-context", "pascal-parts", "pascal-voc")},
    # The CLIP robust fine-tuning line (WiSE-FT, FLYP, Lipsum-FT) reports CLIP ViT-B/16 at its native 224 px.
    **{name: {"backbone": "clip:ViT-B-16/openai", "image_size": 224,
              "methods": ["zeroshot", "lp", "ft", "lp-ft", "wise-ft", "flyp", "lipsum-ft", "tpgm", "ftp", "fsr"]}
       for name in ("imagenet", "imagenet-c")},
}  # fmt: skip
DEFAULT_SUITE = "fmnist-c"


def suite_defaults(suite: str) -> dict:
    return SUITE_DEFAULTS.get(suite, {"backbone": "lite0", "image_size": 224, "methods": ["ft"]})


@dataclass
class RunConfig:
    suite: str
    method: str
    backbone: str
    seed: int
    image_size: int
    hparams: dict
    sizes: dict = field(default_factory=dict)
    pretrained: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def run_id(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True, default=list)
        return f"{self.method}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def resolve_hparams(suite: str, method_cls, overrides: dict) -> dict:
    """Suite recipe < method defaults < method's per-suite recipe < command-line overrides."""
    hp = {**SUITE_RECIPES.get(suite, GENERIC_RECIPE), **method_cls.hparams_for(suite)}
    unknown = set(overrides) - set(hp)
    if unknown:
        raise BenchmarkError(f"unknown hyper-parameter(s) {sorted(unknown)} for {method_cls.name}; valid: {', '.join(sorted(hp))}")
    for key, value in overrides.items():
        hp[key] = coerce(key, hp[key], value)
    method_cls.check(hp)
    return hp


def coerce(key: str, default, value):
    """Check an override against its default's type (ints are accepted where floats are expected)."""
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, (list, tuple)) and isinstance(value, (list, tuple)):
        return type(default)(value)
    if default is not None and type(value) is not type(default):
        raise BenchmarkError(f"hyper-parameter {key} expects {type(default).__name__}, got {value!r}")
    return value
