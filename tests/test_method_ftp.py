"""FTP math on a 2x2 weight (the projection and the radius update by hand), the one-extra-copy bookkeeping
(theta_0 survives the displacement round trip), and agreement with a float64 transcription of SGDP."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.errors import BenchmarkError
from benchmark.engine import RunContext
from methods import METHODS
from methods.ftp import row_norms

# Adam's first step on gamma happens at t = 2 (util/FTP.py): lr * m_hat / sqrt(v_hat) for any gradient g
# = 1e-2 * (0.1 / (1 - 0.9**2)) / sqrt(0.001 / (1 - 0.999**2)) * sign(g)
FIRST_ADAM_STEP = 1e-2 * (0.1 / 0.19) / (0.001 / 0.001999) ** 0.5
FIRST_C = [[3.0, -1.0], [0.5, 0.5]]  # row L1 norms 4 and 1
NO_GRAD = [[0.0, 0.0], [0.0, 0.0]]


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
    ctx = RunContext(train_loader=None, selection_loader=None, device=torch.device("cpu"),
                     num_classes=2, suite="test", seed=0)  # fmt: skip
    method = METHODS.get("ftp")({**METHODS.get("ftp").HPARAMS, **(hp or {})})
    method.setup(model, ctx)
    return model, method


def ftp_step(model, method, displacement, grad, step):
    """One step with a stand-in optimizer that leaves theta_0 + `displacement` (c_t) behind, `grad` at theta_t."""
    model.body.weight.grad = torch.tensor(grad)
    model.head.weight.grad = torch.ones(2, 2)
    method.before_step(model)
    with torch.no_grad():
        model.body.weight.copy_(torch.tensor(displacement))  # the parameter holds the displacement here
        model.head.weight.add_(0.25)
    method.after_step(model, step)


def test_row_norms_by_hand():
    assert torch.allclose(row_norms(torch.tensor(FIRST_C)).flatten(), torch.tensor([4.0, 1.0]))
    assert torch.allclose(row_norms(torch.tensor([1.0, -2.0])), torch.tensor(3.0))  # 1-D: whole-vector L1


def test_first_step_pins_weights_and_leaves_head_alone():
    model, method = make()
    head_before = model.head.weight.detach().clone()
    ftp_step(model, method, FIRST_C, NO_GRAD, 0)
    assert method.gamma["body.weight"].item() == pytest.approx(1e-8)
    # gamma 1e-8: each row keeps 1e-8 / norm of its displacement; float32 cannot show it on a weight of 1 ...
    expected = torch.tensor(FIRST_C) * torch.tensor([[1e-8 / 4], [1e-8 / 1]])
    assert torch.equal(model.body.weight, torch.ones(2, 2))
    # ... but the displacement itself is kept in full
    assert torch.allclose(method.spare["body.weight"], expected, atol=0, rtol=1e-6)
    assert torch.equal(model.head.weight, head_before + 0.25)
    assert "head.weight" not in method.gamma


def test_projection_by_hand():
    model, method = make()
    ftp_step(model, method, FIRST_C, NO_GRAD, 0)
    method.gamma["body.weight"] = torch.tensor(2.0)
    ftp_step(model, method, FIRST_C, NO_GRAD, 1)  # zero radius gradient: Adam leaves gamma at 2
    # row 0 scaled by 2/4; row 1 would be 2/1 -> clamped to 1 (inside the ball, untouched)
    assert torch.allclose(model.body.weight, torch.tensor([[2.5, 0.5], [1.5, 1.5]]))


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_radius_shrinks_when_gradient_agrees_with_last_update(sign):
    model, method = make()
    ftp_step(model, method, FIRST_C, NO_GRAD, 0)
    method.gamma["body.weight"] = torch.tensor(0.5)  # a radius well inside the clip range
    # grad . (c_1 / n_1) = sign * (0.75 * 1 + 0.5 * 1): aligned with the last update -> loss grows along it;
    # c_1 / n_1 is read back from the 1e-8-sized displacement, which the weights themselves have lost
    ftp_step(model, method, [[8.0, 0.0], [0.0, 8.0]], [[sign * 1.0, 0.0], [sign * 1.0, 0.0]], 1)
    gamma = method.gamma["body.weight"].item()
    assert gamma == pytest.approx(0.5 - sign * FIRST_ADAM_STEP, rel=1e-5)
    assert torch.allclose(model.body.weight, 1.0 + torch.tensor([[8.0, 0.0], [0.0, 8.0]]) * gamma / 8)


def test_k_zero_never_shrinks_the_radius():
    model, method = make({"ftp_k": 0.0})
    ftp_step(model, method, FIRST_C, NO_GRAD, 0)
    method.gamma["body.weight"] = torch.tensor(0.5)
    ftp_step(model, method, [[8.0, 0.0], [0.0, 8.0]], [[1.0, 0.0], [1.0, 0.0]], 1)
    assert method.gamma["body.weight"].item() == pytest.approx(0.5)


def test_state_round_trip_resumes_identically():
    model, method = make()
    ftp_step(model, method, FIRST_C, NO_GRAD, 0)
    model2, resumed = make()
    model2.load_state_dict(model.state_dict())
    resumed.load_state_dict(method.state_dict())
    for m, meth in ((model, method), (model2, resumed)):
        ftp_step(m, meth, [[2.0, 1.0], [0.0, 4.0]], [[-1.0, 0.5], [0.0, -2.0]], 1)
    assert torch.equal(model.body.weight, model2.body.weight)
    assert torch.equal(method.spare["body.weight"], resumed.spare["body.weight"])
    assert method.gamma["body.weight"].item() == resumed.gamma["body.weight"].item() > 1e-8


def test_weight_decay_is_refused():
    with pytest.raises(BenchmarkError, match="weight_decay 0"):
        make({"weight_decay": 5e-4})


def test_clip_recipe_projects_the_zero_shot_head_too():
    from tests.clip_ctx import step, tiny_clip_context

    hp = METHODS.get("ftp").RECIPES["imagenet"]
    model, method, batch = tiny_clip_context(METHODS.get("ftp"), {"ftp_exclude_head": hp["ftp_exclude_head"]})
    anchor = model.head.weight.detach().clone()
    for i in range(2):
        step(model, method, batch, lr=1e-2)
        method.after_step(model, i)
    assert "head.weight" in method.gamma and not any(n.startswith("text.") for n in method.gamma)
    # after two steps gamma <= 1e-8 + one Adam step, so every head row stays within that L1 radius
    assert (model.head.weight - anchor).abs().sum(1).max().item() <= 1e-8 + 1e-2 + 1e-6


# --- many steps: theta_0 is kept, and the trajectory is SGDP's --------------------------------------------

def mlp(dtype):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3)).to(dtype)


def batches(n):
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(16, 6, generator=g), torch.randint(0, 3, (16,), generator=g)) for _ in range(n)]


def run_ours(dtype, steps, lr=0.05):
    model = mlp(dtype)
    theta0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    ctx = RunContext(train_loader=None, selection_loader=None, device=torch.device("cpu"),
                     num_classes=3, suite="test", seed=0)  # fmt: skip
    method = METHODS.get("ftp")(dict(METHODS.get("ftp").HPARAMS))  # no "head." names: every tensor projected
    method.setup(model, ctx)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True)
    for i, (x, y) in enumerate(batches(steps)):
        loss = F.cross_entropy(model(x.to(dtype)), y)
        opt.zero_grad()
        loss.backward()
        method.before_step(model)
        opt.step()
        method.after_step(model, i)
    return model, method, theta0


def run_transcription(dtype, steps, lr=0.05):
    """SGDP as util/FTP.py describes it, keeping theta_0 and c_{t-1} / n_{t-1} as separate buffers."""
    model = mlp(dtype)
    pre = {n: p.detach().clone() for n, p in model.named_parameters()}
    buf, prev, gamma, m, v = {}, {}, {}, {}, {}
    for t, (x, y) in enumerate(batches(steps), start=1):
        model.zero_grad()
        F.cross_entropy(model(x.to(dtype)), y).backward()
        with torch.no_grad():
            for n, p in model.named_parameters():
                buf[n] = p.grad.clone() if n not in buf else buf[n].mul(0.9).add(p.grad)
                c = p - lr * (p.grad + 0.9 * buf[n]) - pre[n]
                norms = row_norms(c)
                if t == 1:
                    gamma[n], m[n], v[n] = torch.tensor(1e-8, dtype=dtype), 0.0, 0.0
                else:
                    g = (p.grad * prev[n]).sum()
                    m[n], v[n] = 0.9 * m[n] + 0.1 * g, 0.999 * v[n] + 0.001 * g**2
                    step = 1e-2 * (m[n] / (1 - 0.9**t)) / ((v[n] / (1 - 0.999**t)).sqrt() + 1e-8)
                    gamma[n] = (gamma[n] - step).clamp(1e-8, norms.max())
                p.copy_(pre[n] + (gamma[n] / norms).clamp(0, 1) * c)
                prev[n] = c / norms
    return dict(model.named_parameters()), gamma


def test_theta0_survives_hundreds_of_steps():
    model, method, theta0 = run_ours(torch.float32, 300)
    for name, p in model.named_parameters():
        anchor, delta = p.detach() - method.spare[name], method.spare[name]
        exact = theta0[name].abs() > 4 * delta.abs()
        assert torch.equal(anchor[exact], theta0[name][exact]), name
        # weights smaller than their displacement: a rounding of the weight (measured 7.5e-9)
        assert (anchor - theta0[name]).abs().max() <= 1e-7, name
    assert max(g.item() for g in method.gamma.values()) > 0.1  # the radii did grow: the test moved weights


def test_matches_sgdp_in_float64_and_rounds_no_worse_than_it_in_float32():
    steps = 40
    truth, truth_gamma = run_transcription(torch.float64, steps)
    ref32, ref32_gamma = run_transcription(torch.float32, steps)
    ours64, method64, _ = run_ours(torch.float64, steps)
    ours32, method32, _ = run_ours(torch.float32, steps)
    for name, p in ours64.named_parameters():
        assert (p - truth[name]).abs().max().item() <= 1e-12, name
        assert method64.gamma[name].item() == pytest.approx(truth_gamma[name].item(), rel=1e-12), name
        # float32: as close to the float64 trajectory as the reference's own float32 arithmetic gets
        ours_err = (dict(ours32.named_parameters())[name].double() - truth[name]).abs().max().item()
        ref_err = (ref32[name].double() - truth[name]).abs().max().item()
        assert ours_err <= 2 * ref_err + 1e-8, name
        ours_gamma_err = abs(method32.gamma[name].item() / truth_gamma[name].item() - 1)
        ref_gamma_err = abs(ref32_gamma[name].item() / truth_gamma[name].item() - 1)
        assert ours_gamma_err <= 2 * ref_gamma_err + 1e-6, name


def test_holds_one_extra_copy_and_no_reference():
    model, method, _ = run_ours(torch.float32, 3)
    assert {n: t.shape for n, t in method.spare.items()} == {n: p.shape for n, p in model.named_parameters()}
    assert method.ctx.reference is None and not METHODS.get("ftp").needs_reference  # the frozen copy is never built


def test_interrupted_harness_run_resumes_identically(tmp_path, monkeypatch):
    from method_smoke import run_smoke

    from methods.ftp import FTP

    clean = run_smoke("ftp", tmp_path / "clean", epochs=2, lr=0.05)
    finish_step = FTP.after_step

    def crash_in_second_epoch(self, model, step):
        if step == 2:  # 16 images / batch 8: step 2 opens epoch 2, after the checkpoint of epoch 1
            raise KeyboardInterrupt
        finish_step(self, model, step)

    monkeypatch.setattr(FTP, "after_step", crash_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        run_smoke("ftp", tmp_path / "resumed", epochs=2, lr=0.05)
    monkeypatch.undo()
    resumed = run_smoke("ftp", tmp_path / "resumed", epochs=2, lr=0.05)
    assert [r["value"] for r in resumed["evals"]] == [r["value"] for r in clean["evals"]]
    assert resumed["curves"] == clean["curves"]
