"""A 3-class, 32-px in-memory classification suite (colour-coded blobs) for backbone and CLIP-method tests."""
from __future__ import annotations

import numpy as np

from helpers import register_test_suite, test_suite_spec
from benchmark.data.base import ArrayDataset, EvalSet, Suite

NAME = "test-tiny-cls"
CLASSNAMES = ["cat", "dog", "car"]


def images(n: int, seed: int, invert: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(CLASSNAMES)
    x = rng.integers(0, 60, size=(n, 32, 32, 3)).astype(np.uint8)
    for i, c in enumerate(labels):
        x[i, 8:24, 8:24, c] = 220  # the class is the colour of the central square
    return (255 - x if invert else x), labels


def build(options) -> Suite:
    def ds(n, seed, tf, invert=False):
        return ArrayDataset(*images(n, seed, invert), tf)

    return Suite(NAME, CLASSNAMES, ds(21, 0, options.train_transform), ds(6, 1, options.eval_transform),
                 [EvalSet("clean", "id", ds(9, 2, options.eval_transform)),
                  EvalSet("inverted", "ood", ds(9, 3, options.eval_transform, invert=True))])  # fmt: skip


def register(monkeypatch) -> str:
    """Register the suite for one test only (the registry is global)."""
    return register_test_suite(test_suite_spec(NAME, build), monkeypatch)


def cli_run(results, method: str, backbone: str, *extra) -> int:
    from benchmark.__main__ import main

    return main(["run", "--suite", NAME, "--method", method, "--backbone", backbone, "--results", str(results),
                 "--epochs", "1", "--no-progress", "--workers", "1", *extra])  # fmt: skip
