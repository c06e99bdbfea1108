"""Shared by the method tests: a tiny CNN backbone and a tiny in-memory suite, run through the harness."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from benchmark.models import BACKBONES
from benchmark.models.base import Built, Classifier, simple_transforms
from benchmark.harness.plan import RunConfig, resolve_hparams
from benchmark.data.base import ArrayDataset, EvalSet, Suite
from benchmark.harness.run import execute
from helpers import register_test_suite, test_suite_spec
from methods import METHODS

BACKBONE = "tiny-cnn-methods-test"


def stand_in_pretraining_head(features: int) -> nn.Linear:
    """A fixed stand-in for a pretraining head (5 'pretraining classes'), so FSR's default function-space distance
    runs on the tiny backbones; drawn off the global RNG, so the models' own initialisation is unchanged."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        return nn.Linear(features, 5)


class TinyCNN:
    @staticmethod
    def transforms(req):
        return simple_transforms(req.image_size, (0.5,) * 3, (0.5,) * 3)

    @staticmethod
    def build(req) -> Built:
        body = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        return Built(Classifier(body, nn.Linear(8, len(req.classnames))), *TinyCNN.transforms(req),
                     pretraining_head=stand_in_pretraining_head(8))  # fmt: skip


if BACKBONE not in BACKBONES:
    BACKBONES.register(BACKBONE, "tests only")(TinyCNN)


def tiny_suite(n: int = 16, size: int = 16, seed: int = 0) -> Suite:
    """Two classes of random images (class 1 brighter), a selection split and one ID and one OOD set."""
    rng = np.random.default_rng(seed)
    tf, _ = TinyCNN.transforms(type("R", (), {"image_size": size})())

    def split(k):
        labels = np.arange(k) % 2
        images = rng.integers(0, 128, (k, size, size, 3), dtype=np.uint8) + 100 * labels[:, None, None, None].astype(np.uint8)
        return ArrayDataset(images, labels, tf)

    return Suite("tiny", ["dark", "bright"], split(n), split(8),
                 [EvalSet("clean", "id", split(8)), EvalSet("noisy", "ood", split(8))])  # fmt: skip


register_test_suite(test_suite_spec("tiny", lambda options: tiny_suite(), backbone=BACKBONE, image_size=16))


def run_smoke(method: str, tmp_path, **overrides) -> dict:
    """One run of `method` on the tiny suite through benchmark.harness.run.execute; returns the record."""
    hp = resolve_hparams("tiny", METHODS.get(method), {"epochs": 1, "batch_size": 8, "eval_batch_size": 16, **overrides})
    cfg = RunConfig(suite="tiny", method=method, backbone=BACKBONE, seed=0, image_size=16, hparams=hp, pretrained=False)
    return execute(cfg, tiny_suite(), tmp_path, progress=False).record


def variants(record: dict) -> set[str]:
    return {row["variant"] for row in record["evals"]}
