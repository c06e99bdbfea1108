import copy

import pytest
import torch
from torch import nn

from method_smoke import run_smoke, variants
from benchmark.engine import RunContext, frozen_copy
from methods.l2_sp import L2SP


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(2, 2, bias=False)
        self.head = nn.Linear(2, 2)

    def forward(self, x):
        return self.head(self.body(x))


def setup(alpha=0.1, beta=0.01):
    model = Tiny()
    with torch.no_grad():
        model.body.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        model.head.weight.copy_(torch.tensor([[1.0, -1.0], [2.0, 0.0]]))
        model.head.bias.copy_(torch.tensor([0.0, 1.0]))
    ctx = RunContext([], [], torch.device("cpu"), 2, "tiny", 0, reference=frozen_copy(model))
    method = L2SP({"alpha": alpha, "beta": beta})
    method.setup(model, ctx)
    return method, model


def batch():
    return torch.zeros(1, 2), torch.tensor([0])


def test_penalty_is_zero_at_init_and_the_head_term_is_plain_l2():
    method, model = setup()
    terms = method.loss(model, batch())
    assert terms["sp"].item() == 0.0
    assert terms["head_l2"].item() == pytest.approx(0.01 / 2 * (1 + 1 + 4 + 1))  # ||W||^2 + ||b||^2 = 7


def test_penalty_on_a_known_displacement():
    method, model = setup(alpha=0.1)
    with torch.no_grad():
        model.body.weight.add_(torch.tensor([[1.0, 0.0], [0.0, -2.0]]))  # ||theta - theta0||^2 = 5
        model.head.weight.add_(10.0)  # the head is not part of the SP term
    assert method.loss(model, batch())["sp"].item() == pytest.approx(0.1 / 2 * 5)


def test_weight_decay_is_off_for_every_parameter():
    method, model = setup()
    groups = method.param_groups(model)
    assert all(g["weight_decay"] == 0.0 for g in groups)
    assert {id(p) for g in groups for p in g["params"]} == {id(p) for p in model.parameters()}


def test_anchor_is_the_pretrained_copy_not_the_live_model():
    method, model = setup()
    before = copy.deepcopy(model.body.weight.detach())
    with torch.no_grad():
        model.body.weight.mul_(2)
    assert torch.equal(method.pairs[0][1], before)


def test_runs_through_the_harness(tmp_path):
    record = run_smoke("l2-sp", tmp_path)
    assert variants(record) == {"l2-sp"} and {"train_sp", "train_head_l2", "train_ce"} <= set(record["curves"])
