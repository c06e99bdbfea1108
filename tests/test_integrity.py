"""Run integrity: a value a run cannot train with is refused when the run is configured (before any data is
read), and a model whose weights went non-finite (a last step, a closed-form probe) is refused before it is
recorded. Either way: one line on stderr, exit 2, no record."""
import math

import pytest
import torch

from benchmark.__main__ import main
from benchmark.errors import BenchmarkError
from benchmark.harness import run
from benchmark.harness.plan import resolve_hparams
from helpers import tiny_run
from methods import METHODS, lp
from methods.base import Method

pytestmark = pytest.mark.faults  # the fault suite: `pytest -m faults`


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err.strip()


def records_in(results) -> list:
    return list(results.glob("runs/*/*.json"))


@pytest.fixture
def no_data(monkeypatch):
    """Reading data fails loudly: a configure-time check must refuse the run before this."""

    def prepare_suite(*args, **kwargs):
        raise AssertionError("data was read")

    monkeypatch.setattr(run, "prepare_suite", prepare_suite)


@pytest.mark.parametrize(
    "method, argv, expected",
    [
        ("lp", ["--set", "probe_wd=-1"], "lp: probe_wd=-1.0 is out of range; valid: >= 0"),
        ("ft", ["--set", "grad_clip=-1"], "ft: grad_clip=-1.0 is out of range; valid: >= 0"),
        ("ft", ["--epochs", "0"], "ft: epochs=0 is out of range; valid: >= 1"),
        ("ft", ["--set", "lr=0"], "ft: lr=0.0 is out of range; valid: > 0"),
        ("ft", ["--set", "lr=-0.1"], "ft: lr=-0.1 is out of range; valid: > 0"),
        ("ft", ["--set", "weight_decay=-1"], "ft: weight_decay=-1.0 is out of range; valid: >= 0"),
        ("ft", ["--set", "batch_size=0"], "ft: batch_size=0 is out of range; valid: >= 1"),
        ("ft", ["--set", "eval_batch_size=0"], "ft: eval_batch_size=0 is out of range; valid: >= 1"),
        ("ft", ["--set", "warmup_steps=-1"], "ft: warmup_steps=-1 is out of range; valid: >= 0"),
        ("ft", ["--set", "momentum=1.0"], "ft: momentum=1.0 is out of range; valid: [0, 1)"),
        ("ft", ["--set", "optimizer=adam"], "ft: optimizer='adam' is unknown; valid: sgd, adamw"),
        # the shared keys are checked even where nothing is trained
        ("zeroshot", ["--set", "lr=-1"], "zeroshot: lr=-1.0 is out of range; valid: > 0"),
    ],
)
@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "run"])
def test_bad_values_are_refused_when_configured(method, argv, expected, dry_run, no_data, tmp_path, capsys):
    extra = ["--method", method, "--results", str(tmp_path), *argv] + (["--dry-run"] if dry_run else [])
    assert main(["run", *extra]) == 2
    assert expected in one_line_error(capsys)
    assert not records_in(tmp_path)


# (method, key, a bad value, the valid range as the message says it): every method's own numeric
# hyper-parameters (test_every_own_hyperparameter_is_checked keeps the list complete).
OWN = [
    ("lp", "probe_wd", -1e-4, ">= 0"),
    ("lp-ft", "probe_wd", -1e-4, ">= 0"),
    ("wise-ft", "probe_wd", -1e-4, ">= 0"),
    ("wise-ft", "bn_reestimate_images", -1, ">= 0"),
    ("wise-ft", "alphas", (0.5, 2.0), "[0, 1]"),
    ("l2-sp", "alpha", -0.1, ">= 0"),
    ("l2-sp", "beta", -0.01, ">= 0"),
    ("tpgm", "proj_freq", -1, ">= 0"),
    ("tpgm", "max_iters", 0, ">= 1"),
    ("tpgm", "radius_lr", 0.0, "> 0"),
    ("tpgm", "posthoc_iters", -1, ">= 0"),
    ("tpgm", "proj_batch_size", 0, ">= 1"),
    ("ftp", "ftp_k", 1.5, "[0, 1]"),
    ("ftp", "ftp_k", -0.5, "[0, 1]"),
    ("ftp", "ftp_lr", 0.0, "> 0"),
    ("ftp", "weight_decay", 0.1, "weight_decay 0"),
    ("fsr", "fsr_lambda", -1.0, ">= 0"),
    ("fsr", "fsr_consistency", -1.0, ">= 0"),
    ("fsr", "fsr_amp_eta", 1.5, "[0, 1]"),
    ("fsr", "fsr_temperature", 0.0, "> 0"),
    ("fsr", "fsr_temperature", math.inf, "> 0"),
    ("lipsum-ft", "lipsum_lambda", -1.0, ">= 0"),
    ("lipsum-ft", "lipsum_texts", 0, ">= 1"),
    ("lipsum-ft", "lipsum_tokens", 0, ">= 1"),
    ("soup", "soup_lr_scales", (0.5, 0.0), "> 0"),
    ("soup", "soup_lr_scales", (0.5, "fast"), "> 0"),
    ("soup", "bn_reestimate_images", -1, ">= 0"),
]


@pytest.mark.parametrize("method, key, value, valid", OWN, ids=[f"{m}-{k}-{v}" for m, k, v, _ in OWN])
def test_each_methods_own_values_are_checked(method, key, value, valid):
    with pytest.raises(BenchmarkError, match=key) as caught:
        resolve_hparams("fmnist-c", METHODS.get(method), {key: value})
    message = str(caught.value)
    assert method in message and valid in message and "\n" not in message


def test_every_own_hyperparameter_is_checked():
    numeric = {(name, key) for name in METHODS.names() for key, v in METHODS.get(name).HPARAMS.items()
               if isinstance(v, (int, float, tuple)) and not isinstance(v, bool)}  # fmt: skip
    # Budget keys a method sets itself are the shared checks' (test_bad_values_are_refused_when_configured).
    shared = {"optimizer", "lr", "weight_decay", "grad_clip"}
    assert {(n, k) for n, k in numeric if k not in shared} <= {(m, k) for m, k, _, _ in OWN}


def test_the_defaults_and_the_range_ends_pass():
    for name in METHODS.names():
        resolve_hparams("fmnist-c", METHODS.get(name), {})
    resolve_hparams("fmnist-c", METHODS.get("ft"), {"grad_clip": 0.0, "weight_decay": 0.0, "momentum": 0.0})
    resolve_hparams("fmnist-c", METHODS.get("fsr"), {"fsr_amp_eta": 0.0, "fsr_lambda": 0.0})


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_nan_and_inf_are_out_of_every_range(value):
    with pytest.raises(BenchmarkError, match=f"ft: lr={value} is out of range"):
        resolve_hparams("fmnist-c", METHODS.get("ft"), {"lr": value})


def test_divergence_in_the_last_step_writes_no_record(tmp_path, monkeypatch, capsys):
    # 48 images in batches of 24: two steps; the second (last) one breaks the weights after its loss was
    # checked, so only the check after training can see it.
    def after_step(self, model, step):
        if step == 1:
            with torch.no_grad():
                model.head.weight.fill_(math.inf)

    monkeypatch.setattr(Method, "after_step", after_step)
    assert tiny_run(tmp_path, "--set", "batch_size=24") == 2
    err = one_line_error(capsys)
    assert err == "error: ft: non-finite values after training (first: head.weight); no record written"
    assert not records_in(tmp_path)


def test_a_non_finite_variant_writes_no_record(tmp_path, monkeypatch, capsys):
    finalize = Method.finalize

    def broken(self, model):
        variants = finalize(self, model)
        state = {k: v.clone() for k, v in variants["ft"].items()}
        state["head.bias"][0] = math.nan
        return {**variants, "ft-broken": state}

    monkeypatch.setattr(Method, "finalize", broken)
    assert tiny_run(tmp_path) == 2
    assert one_line_error(capsys) == "error: ft: non-finite values in variant ft-broken (first: head.bias); no record written"
    assert not records_in(tmp_path)


def test_a_non_finite_probe_is_refused(tmp_path, monkeypatch, capsys):
    def nan_fit(feats, labels, num_classes, weight_decay):
        return torch.full((num_classes, feats.shape[1]), math.nan), torch.zeros(num_classes)

    monkeypatch.setattr(lp, "fit_logistic_regression", nan_fit)
    assert tiny_run(tmp_path, methods=("lp",)) == 2
    err = one_line_error(capsys)
    assert err.startswith("error: lp: the linear probe's fit gave non-finite weights") and "probe_wd=0.0001" in err
    assert not records_in(tmp_path)


def test_valid_values_at_the_range_ends_still_write_the_record(tmp_path, capsys):
    # probe_wd 0 and grad_clip 0 (off) are the ends of their ranges, both valid
    assert tiny_run(tmp_path, "--set", "probe_wd=0.0", "grad_clip=0.0", methods=("lp", "ft")) == 0
    assert len(records_in(tmp_path)) == 2
