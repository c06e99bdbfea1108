"""The engine: the one training loop, evaluation and its metrics, loaders and autocast, and the context a
method sees. This is the whole interface methods build on (with their own base class in methods/base.py)."""
from benchmark.engine.context import RunContext, frozen_copy
from benchmark.engine.evaluate import evaluate, predict
from benchmark.engine.loaders import autocast, default_device, loader
from benchmark.engine.loop import fit, make_optimizer
from benchmark.engine.metrics import accuracy

__all__ = ["RunContext", "accuracy", "autocast", "default_device", "evaluate", "fit", "frozen_copy", "loader",
           "make_optimizer", "predict"]
