"""L2-SP (Li, Grandvalet & Davoine, ICML 2018, "Explicit Inductive Bias for Transfer Learning with
Convolutional Networks"): fine-tuning with an L2 penalty towards the pretrained weights instead of
towards zero,

    loss = CE + alpha/2 * ||theta_pretrained_part - theta0||^2 + beta/2 * ||theta_head||^2,

where theta0 is ctx.reference (the pretrained model) and the pretrained part is every non-head
parameter (conv/linear weights, biases and normalisation scales alike). The penalty replaces weight
decay: plain decay would pull the same weights towards zero, so this method's optimizer runs with
weight_decay 0 on every parameter (the beta term is the head's decay).
"""
from __future__ import annotations

import torch

from methods import METHODS
from methods.base import Method, check_range, is_head


@METHODS.register("l2-sp")
class L2SP(Method):
    description = "L2-SP: L2 penalty towards the pretrained weights (alpha) and on the new head (beta)"
    needs_reference = True
    # Li et al. 2018, Sec. 4: alpha = 0.1, beta = 0.01 for their classification targets (alpha = 0.01
    # where the target is close to the source); Fashion-MNIST is far from ImageNet, so 0.1.
    HPARAMS = {"alpha": 0.1, "beta": 0.01}

    @classmethod
    def check(cls, hp):
        for key in ("alpha", "beta"):  # a negative weight rewards moving away (from theta0, or to large heads)
            check_range(cls.name, key, hp[key], 0)

    def setup(self, model, ctx):
        super().setup(model, ctx)
        anchors = dict(ctx.reference.named_parameters())
        trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.pairs = [(p, anchors[n]) for n, p in trainable if not is_head(n)]
        self.head = [p for n, p in trainable if is_head(n)]

    def param_groups(self, model):
        return [{"params": [p for p, _ in self.pairs] + self.head, "weight_decay": 0.0}]

    def loss(self, model, batch):
        terms = super().loss(model, batch)
        terms["sp"] = self.hp["alpha"] / 2 * sum((p - p0).pow(2).sum() for p, p0 in self.pairs)
        terms["head_l2"] = self.hp["beta"] / 2 * sum(p.pow(2).sum() for p in self.head)
        return terms
