"""Gradient accumulation: accum_steps micro-batches per optimizer step train as one batch of the recipe's size.

A BatchNorm-free tiny CNN (BatchNorm normalises over the micro-batch, so there the two legitimately differ).
Also the home of that backbone and of the run helper that tests/test_distributed.py and tests/test_preemption.py
use too."""
import pytest
from torch import nn

from benchmark.errors import BenchmarkError
from benchmark.harness.plan import RunConfig, resolve_hparams
from benchmark.harness.run import execute
from benchmark.models import BACKBONES
from benchmark.models.base import Built, Classifier
from method_smoke import TinyCNN, stand_in_pretraining_head, tiny_suite
from methods import METHODS

BACKBONE = "tiny-cnn-no-bn-test"
# FSR pairs images for its amplitude mixes within each device's micro-batch (as per-device augmentation does),
# so only the identity mix can match a whole-batch run; its distance and consistency terms are still trained.
SAME_BATCH_HP = {"fsr": {"fsr_amp_eta": 0.0}}


class TinyNoBN:
    transforms = TinyCNN.transforms

    @staticmethod
    def build(req) -> Built:
        body = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        return Built(Classifier(body, nn.Linear(8, len(req.classnames))), *TinyNoBN.transforms(req),
                     pretraining_head=stand_in_pretraining_head(8))  # fmt: skip


if BACKBONE not in BACKBONES:
    BACKBONES.register(BACKBONE, "tests only")(TinyNoBN)


def run(method: str, results, images: int = 72, **overrides) -> dict:
    """One run of `method` on the BN-free tiny CNN through execute; returns its record. 72 training images:
    at batch 32, steps of 32, 32 and a short one of 8."""
    hp = {"epochs": 2, "batch_size": 32, "eval_batch_size": 16, **SAME_BATCH_HP.get(method, {}), **overrides}
    cfg = RunConfig(suite="tiny", method=method, backbone=BACKBONE, seed=0, image_size=16,
                    hparams=resolve_hparams("tiny", METHODS.get(method), hp), pretrained=False)  # fmt: skip
    return execute(cfg, tiny_suite(n=images), results, progress=False).record


def assert_same_numbers(record: dict, reference: dict) -> None:
    """The same evaluation rows and loss curves, within float tolerance (summation order differs)."""
    assert [(r["variant"], r["eval"]) for r in record["evals"]] == [(r["variant"], r["eval"]) for r in reference["evals"]]
    for row, ref in zip(record["evals"], reference["evals"]):
        assert row["value"] == pytest.approx(ref["value"], abs=1e-6), (row["variant"], row["eval"])
    assert record["curves"].keys() == reference["curves"].keys()
    for name, values in record["curves"].items():
        assert values == pytest.approx(reference["curves"][name], rel=1e-5, abs=1e-7), name


@pytest.mark.parametrize("method", ["ft", "tpgm", "fsr", "ftp"])
def test_two_micro_batches_per_step_train_as_one_batch(method, tmp_path):
    whole = run(method, tmp_path / "whole")
    accumulated = run(method, tmp_path / "accumulated", accum_steps=2)
    assert accumulated["accum_steps"] == 2 and whole["accum_steps"] == 1
    assert_same_numbers(accumulated, whole)


def test_micro_batches_smaller_than_the_short_last_step_still_add_up(tmp_path):
    # accum 8: micro-batches of 4, the last step's 8 images in 2 of them (fewer than accum_steps)
    assert_same_numbers(run("ft", tmp_path / "a", accum_steps=8), run("ft", tmp_path / "b"))


def test_accum_steps_is_in_the_run_id_only_when_set():
    ft = METHODS.get("ft")
    default = resolve_hparams("tiny", ft, {})
    assert "accum_steps" not in default and resolve_hparams("tiny", ft, {"accum_steps": 1}) == default
    assert resolve_hparams("tiny", ft, {"accum_steps": 2}) == {**default, "accum_steps": 2}


@pytest.mark.parametrize("value, message", [
    (0, "accum_steps=0 is out of range; valid: >= 1"),
    (1.5, "accum_steps expects int"),
    (3, "batch_size 64 is not divisible by accum_steps 3"),
])  # fmt: skip
def test_bad_accum_steps_are_refused_in_one_line(value, message):
    with pytest.raises(BenchmarkError, match=message):
        resolve_hparams("tiny", METHODS.get("ft"), {"accum_steps": value})


def test_a_method_hook_runs_once_per_optimizer_step(tmp_path, monkeypatch):
    calls = {"loss": 0, "after_step": 0}
    cls = METHODS.get("ft")
    loss, after_step = cls.loss, cls.after_step

    def counted(name, hook):
        def wrapper(self, *args):
            calls[name] += 1
            return hook(self, *args)
        return wrapper

    monkeypatch.setattr(cls, "loss", counted("loss", loss))
    monkeypatch.setattr(cls, "after_step", counted("after_step", after_step))
    run("ft", tmp_path, accum_steps=4, epochs=1)
    # 3 optimizer steps of 32, 32 and 8 images; micro-batches of 8: 4 + 4 + 1
    assert calls == {"loss": 9, "after_step": 3}


def test_a_per_device_batch_that_does_not_divide_is_refused_in_one_line(tmp_path, monkeypatch):
    from benchmark.engine import distributed

    monkeypatch.setattr(distributed, "world_size", lambda: 3)
    with pytest.raises(BenchmarkError, match=r"^batch_size 32 is not divisible by 3 processes x accum_steps 2; "):
        distributed.per_device_batch(32, 2)
    assert distributed.per_device_batch(48, 2) == 8
