"""The zero-shot row: the pretrained model with its zero-shot head, evaluated as is (no training)."""
from benchmark.errors import BenchmarkError
from methods import METHODS
from methods.base import Method


@METHODS.register("zeroshot")
class ZeroShot(Method):
    description = "zero-shot: the pretrained model and its zero-shot head, no training (clip:... backbones)"
    tasks = ("classification",)

    def setup(self, model, ctx):
        if not ctx.head_is_pretrained:
            raise BenchmarkError("zeroshot needs a backbone with a zero-shot head (clip:...); this backbone's head "
                                 "is freshly initialised, so its zero-shot accuracy would be chance")  # fmt: skip
        super().setup(model, ctx)

    def param_groups(self, model):
        return []  # nothing is trained: the harness skips the loop
