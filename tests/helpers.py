"""Shared test helpers: a tiny, real fmnist-c configuration that runs in seconds."""
from benchmark.__main__ import main

TINY_SIZES = ["n_train=48", "n_selection=16", "n_test=24", "n_ood=8", "severities=(3,)", "corruptions=('fog','contrast')"]


def tiny_run(results, *extra, methods=("ft",), epochs=1):
    argv = ["run", "--method", *methods, "--results", str(results), "--image-size", "32", "--epochs", str(epochs),
            "--no-progress", "--workers", "1", "--size", *TINY_SIZES, *extra]  # fmt: skip
    return main(argv)
