import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from benchmark.errors import BenchmarkError
from benchmark.engine import loader
from method_smoke import run_smoke, variants
from benchmark.engine import RunContext
from methods.base import reestimate_bn
from methods.wise_ft import WiseFT, interpolate

THETA0 = {"w": torch.tensor([[1.0, 2.0], [3.0, 4.0]]), "bn.num_batches_tracked": torch.tensor(0)}
THETA = {"w": torch.tensor([[3.0, 2.0], [-1.0, 0.5]]), "bn.num_batches_tracked": torch.tensor(7)}


def test_endpoints_are_exact_and_half_is_the_midpoint():
    assert torch.equal(interpolate(THETA0, THETA, 0.0)["w"], THETA0["w"])
    assert torch.equal(interpolate(THETA0, THETA, 1.0)["w"], THETA["w"])
    torch.testing.assert_close(interpolate(THETA0, THETA, 0.5)["w"], torch.tensor([[2.0, 2.0], [1.0, 2.25]]))


def test_integer_buffers_come_from_the_fine_tuned_model_and_nothing_aliases_it():
    out = interpolate(THETA0, THETA, 0.0)
    assert out["bn.num_batches_tracked"].item() == 7
    assert all(out[k].data_ptr() not in (THETA[k].data_ptr(), THETA0[k].data_ptr()) for k in out)


def test_alpha_grids():
    assert WiseFT.hparams_for("imagenet")["alphas"] == tuple(i / 10 for i in range(11))
    assert WiseFT.hparams_for("fmnist-c")["alphas"] == (0.0, 0.5, 1.0)


def test_one_variant_per_alpha_through_the_harness_and_alpha_zero_is_the_probe(tmp_path):
    record = run_smoke("wise-ft", tmp_path, alphas=(0.0, 0.5, 1.0))
    assert variants(record) == {"wise-ft@0", "wise-ft@0.5", "wise-ft@1"}
    lp = run_smoke("lp", tmp_path)  # theta0 of a backbone without a zero-shot head is the linear probe
    score = lambda rec, variant: [(r["eval"], r["value"]) for r in rec["evals"] if r["variant"] == variant]  # noqa: E731
    assert score(record, "wise-ft@0") == score(lp, "lp")


def test_bad_alphas_are_a_user_error(tmp_path):
    with pytest.raises(BenchmarkError, match="alphas"):
        run_smoke("wise-ft", tmp_path, alphas=(0.5, 2.0))


def bn_net_and_context(alphas, images):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(2))
        net[0].bias.zero_()
    data = TensorDataset(torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [6.0, 7.0]]), torch.tensor([0, 1, 0, 1]))
    ctx = RunContext(train_loader=loader(data, 4), selection_loader=None, device=torch.device("cpu"),
                     num_classes=2, suite="test", seed=0, head_is_pretrained=True)  # fmt: skip
    method = WiseFT({**WiseFT.HPARAMS, "alphas": alphas, "bn_reestimate_images": images})
    method.setup(net, ctx)
    with torch.no_grad():  # stands in for fine-tuning: new weights and running statistics
        net[0].weight.mul_(3.0)
        net[0].bias.copy_(torch.tensor([2.0, 0.0]))
        net[1].running_mean.fill_(10.0)
        net[1].running_var.fill_(4.0)
    return net, method


def test_interior_alphas_get_batchnorm_statistics_of_their_own_weights():
    net, method = bn_net_and_context((0.0, 0.5, 1.0), images=4)
    theta = {k: v.clone() for k, v in net.state_dict().items()}
    theta0 = method.theta0
    out = method.finalize(net)
    assert all(torch.equal(out["wise-ft@0"][k], theta0[k]) for k in theta0 if k != "1.num_batches_tracked")
    assert all(torch.equal(out["wise-ft@1"][k], theta[k]) for k in theta)
    # alpha 0.5: weight 2I, bias (1, 0); the four inputs map to (1,2) (5,6) (9,10) (13,14):
    # mean (7, 8), unbiased variance (36 + 4 + 4 + 36) / 3 per unit
    mid = out["wise-ft@0.5"]
    torch.testing.assert_close(mid["0.weight"], 2 * torch.eye(2))
    torch.testing.assert_close(mid["1.running_mean"], torch.tensor([7.0, 8.0]))
    torch.testing.assert_close(mid["1.running_var"], torch.full((2,), 80 / 3))


def test_zero_images_interpolates_the_statistics_as_the_paper_does():
    net, method = bn_net_and_context((0.5,), images=0)
    mid = method.finalize(net)["wise-ft@0.5"]
    torch.testing.assert_close(mid["1.running_mean"], torch.full((2,), 5.0))  # (0 + 10) / 2
    torch.testing.assert_close(mid["1.running_var"], torch.full((2,), 2.5))  # (1 + 4) / 2
    assert WiseFT.hparams_for("imagenet")["bn_reestimate_images"] == 0


def test_a_model_without_batchnorm_is_returned_untouched():
    net = nn.Linear(2, 2)
    state = net.state_dict()
    assert reestimate_bn(net, state, None, 1024) is state
