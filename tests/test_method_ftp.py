"""FTP math on a 2x2 weight: the projection by hand, and the sign of the radius update."""
import pytest
import torch
from torch import nn

from methods import METHODS, RunContext
from methods.ftp import project, row_norms

# Adam's first step on gamma happens at t = 2 (util/FTP.py): lr * m_hat / sqrt(v_hat) for any gradient g
# = 1e-2 * (0.1 / (1 - 0.9**2)) / sqrt(0.001 / (1 - 0.999**2)) * sign(g)
FIRST_ADAM_STEP = 1e-2 * (0.1 / 0.19) / (0.001 / 0.001999) ** 0.5


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(2, 2, bias=False)
        self.head = nn.Linear(2, 2)


def make(hp=None):
    torch.manual_seed(0)
    model = Tiny()
    with torch.no_grad():
        model.body.weight.fill_(1.0)
    ctx = RunContext(initial_model=model, train_loader=None, selection_loader=None, device=torch.device("cpu"),
                     num_classes=2, suite="test", seed=0)  # fmt: skip
    method = METHODS.get("ftp")({**METHODS.get("ftp").HPARAMS, **(hp or {})})
    method.setup(model, ctx)
    return model, method


def optimizer_moves(model, displacement, grad):
    """What the optimizer leaves behind: theta = theta_0 + displacement, and the gradient at the old theta."""
    with torch.no_grad():
        model.body.weight.copy_(1.0 + torch.tensor(displacement))
    model.body.weight.grad = torch.tensor(grad)
    model.head.weight.grad = torch.ones(2, 2)


def test_projection_by_hand():
    c = torch.tensor([[3.0, -1.0], [0.5, 0.5]])  # row L1 norms 4 and 1
    assert torch.allclose(row_norms(c).flatten(), torch.tensor([4.0, 1.0]))
    # gamma 2: row 0 scaled by 2/4, row 1 would be 2/1 -> clamped to 1 (inside the ball, untouched)
    out = project(torch.ones(2, 2), c, torch.tensor(2.0), row_norms(c))
    assert torch.allclose(out, torch.tensor([[2.5, 0.5], [1.5, 1.5]]))
    assert torch.allclose(row_norms(torch.tensor([1.0, -2.0])), torch.tensor(3.0))  # 1-D: whole-vector L1


def test_first_step_pins_weights_and_leaves_head_alone():
    model, method = make()
    head_before = model.head.weight.detach().clone() + 0.25
    with torch.no_grad():
        model.head.weight.copy_(head_before)
    optimizer_moves(model, [[3.0, -1.0], [0.5, 0.5]], [[0.0, 0.0], [0.0, 0.0]])
    method.after_step(model, 0)
    assert method.gamma["body.weight"].item() == pytest.approx(1e-8)
    # gamma 1e-8: each row keeps 1e-8 / norm of its displacement
    expected = 1.0 + torch.tensor([[3.0, -1.0], [0.5, 0.5]]) * torch.tensor([[1e-8 / 4], [1e-8 / 1]])
    assert torch.allclose(model.body.weight, expected, atol=0, rtol=1e-6)
    assert torch.equal(model.head.weight, head_before)
    assert "head.weight" not in method.gamma


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_radius_shrinks_when_gradient_agrees_with_last_update(sign):
    model, method = make()
    optimizer_moves(model, [[3.0, -1.0], [0.5, 0.5]], [[0.0, 0.0], [0.0, 0.0]])
    method.after_step(model, 0)
    method.gamma["body.weight"] = torch.tensor(0.5)  # a radius well inside the clip range
    # grad . (c_1 / n_1) = sign * (0.75 * 1 + 0.5 * 1): aligned with the last update -> loss grows along it
    optimizer_moves(model, [[8.0, 0.0], [0.0, 8.0]], [[sign * 1.0, 0.0], [sign * 1.0, 0.0]])
    method.after_step(model, 1)
    gamma = method.gamma["body.weight"].item()
    assert gamma == pytest.approx(0.5 - sign * FIRST_ADAM_STEP, rel=1e-5)
    assert torch.allclose(model.body.weight, 1.0 + torch.tensor([[8.0, 0.0], [0.0, 8.0]]) * gamma / 8)


def test_k_zero_never_shrinks_the_radius():
    model, method = make({"ftp_k": 0.0})
    optimizer_moves(model, [[3.0, -1.0], [0.5, 0.5]], [[0.0, 0.0], [0.0, 0.0]])
    method.after_step(model, 0)
    method.gamma["body.weight"] = torch.tensor(0.5)
    optimizer_moves(model, [[8.0, 0.0], [0.0, 8.0]], [[1.0, 0.0], [1.0, 0.0]])
    method.after_step(model, 1)
    assert method.gamma["body.weight"].item() == pytest.approx(0.5)


def test_state_round_trip_resumes_identically():
    model, method = make()
    optimizer_moves(model, [[3.0, -1.0], [0.5, 0.5]], [[0.0, 0.0], [0.0, 0.0]])
    method.after_step(model, 0)
    model2, resumed = make()
    resumed.load_state_dict(method.state_dict())
    for m, meth in ((model, method), (model2, resumed)):
        optimizer_moves(m, [[2.0, 1.0], [0.0, 4.0]], [[-1.0, 0.5], [0.0, -2.0]])
        meth.after_step(m, 1)
    assert torch.equal(model.body.weight, model2.body.weight)
    assert method.gamma["body.weight"].item() == resumed.gamma["body.weight"].item() > 1e-8


def test_clip_recipe_projects_the_zero_shot_head_too():
    from tests.clip_ctx import step, tiny_clip_context

    hp = METHODS.get("ftp").RECIPES["imagenet"]
    model, method, batch = tiny_clip_context(METHODS.get("ftp"), {"ftp_exclude_head": hp["ftp_exclude_head"]})
    for i in range(2):
        step(model, method, batch, lr=1e-2)
        method.after_step(model, i)
    assert "head.weight" in method.gamma and not any(n.startswith("text.") for n in method.gamma)
    anchor = dict(method.ctx.reference.named_parameters())["head.weight"]
    # after two steps gamma <= 1e-8 + one Adam step, so every head row stays within that L1 radius
    assert (model.head.weight - anchor).abs().sum(1).max().item() <= 1e-8 + 1e-2 + 1e-6
