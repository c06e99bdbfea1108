"""Shared test helpers: a tiny, real fmnist-c configuration that runs in seconds."""
from benchmark.__main__ import main
from benchmark.data import SUITES, SuiteSpec

# The recipe of the suites defined only in tests (SGD, as the fmnist-c default).
TEST_RECIPE = {"optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4, "epochs": 10,
               "batch_size": 64, "warmup_steps": 0, "grad_clip": 1.0, "eval_batch_size": 256}  # fmt: skip


def test_suite_spec(name: str, build, sizes=None, methods=("ft",), backbone="lite0", image_size=32) -> SuiteSpec:
    return SuiteSpec(name, "test suite", build, TEST_RECIPE, sizes or {}, backbone, image_size, tuple(methods))


def register_test_suite(spec: SuiteSpec, monkeypatch=None) -> str:
    """Register a suite defined in a test (for one test with monkeypatch, else for the session)."""
    SUITES.load()
    if monkeypatch is not None:
        monkeypatch.setitem(SUITES._items, spec.name, spec)
        monkeypatch.setitem(SUITES._descriptions, spec.name, spec.description)
    elif spec.name not in SUITES:
        SUITES.register(spec.name, spec.description)(spec)
    return spec.name

TINY_SIZES = ["n_train=48", "n_selection=16", "n_test=24", "n_ood=8", "severities=(3,)", "corruptions=('fog','contrast')"]


def tiny_run(results, *extra, methods=("ft",), epochs=1):
    argv = ["run", "--suite", "fmnist-c", "--method", *methods, "--results", str(results), "--image-size", "32", "--epochs", str(epochs),
            "--no-progress", "--workers", "1", "--size", *TINY_SIZES, *extra]  # fmt: skip
    return main(argv)
