from methods import METHODS
from methods.base import Method


@METHODS.register("ft")
class FT(Method):
    """Full fine-tuning: every parameter trained with cross-entropy (the baseline every row is read against)."""

    description = "full fine-tuning: all parameters, cross-entropy"
