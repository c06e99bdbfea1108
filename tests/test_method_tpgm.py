import copy

import pytest
import torch
from torch import nn

from benchmark.errors import BenchmarkError
from method_smoke import run_smoke, variants
from methods.tpgm import TPGM, RadiusProjection, distance_norms


def project(theta0: dict, theta: dict, mode: str, gamma: list[float]) -> dict:
    proj = RadiusProjection(list(theta), mode, 1e-2, "cpu")
    proj.initialized = True  # use the radii given, not the first-call initialisation
    with torch.no_grad():
        proj.gamma.copy_(torch.tensor(gamma))
        return proj.projected(theta, theta0)


def test_mars_projects_each_row_of_a_matrix_and_a_vector_as_a_whole():
    theta0 = {"w": torch.zeros(2, 2), "b": torch.ones(3)}
    # row L1 norms 4 (outside radius 2: halved) and 1 (inside: kept); the vector's L1 is 2 (radius 1: halved)
    theta = {"w": torch.tensor([[3.0, -1.0], [0.5, 0.5]]), "b": torch.tensor([2.0, 0.0, 1.0])}
    out = project(theta0, theta, "mars", [2.0, 1.0])
    torch.testing.assert_close(out["w"], torch.tensor([[1.5, -0.5], [0.5, 0.5]]))
    torch.testing.assert_close(out["b"], torch.tensor([1.5, 0.5, 1.0]))


def test_l2_projects_the_whole_tensor():
    theta0 = {"w": torch.ones(2, 2)}
    theta = {"w": torch.tensor([[4.0, 1.0], [1.0, 5.0]])}  # displacement [[3,0],[0,4]], L2 norm 5
    out = project(theta0, theta, "l2", [2.5])
    torch.testing.assert_close(out["w"], torch.tensor([[2.5, 1.0], [1.0, 3.0]]))


def test_mars_norms_shapes():
    assert distance_norms(torch.ones(4, 3, 2, 2), "mars").shape == (4, 1, 1, 1)
    assert distance_norms(torch.tensor([1.0, -2.0]), "mars").item() == 3.0
    assert distance_norms(torch.tensor([[3.0, 4.0]]), "l2").item() == 5.0


def test_gamma_initialised_to_half_the_smallest_norm_then_clipped():
    theta0 = {"w": torch.zeros(2, 2)}
    theta = {"w": torch.tensor([[3.0, -1.0], [0.5, 0.5]])}  # row norms 4 and 1
    proj = RadiusProjection(["w"], "mars", 1e-2, "cpu")
    proj.projected(theta, theta0)
    assert proj.gamma.item() == pytest.approx(0.5)
    with torch.no_grad():
        proj.gamma.fill_(100.0)
    proj.projected(theta, theta0)
    assert proj.gamma.item() == pytest.approx(4.0)  # clipped to norms.max()
    with torch.no_grad():
        proj.gamma.fill_(-3.0)
    proj.projected(theta, theta0)
    assert proj.gamma.item() == pytest.approx(1e-8)


def radius_after_one_step(start_good: bool) -> tuple[float, float]:
    """Linear 2-class model; the held-out batch is classified right by `good` weights, wrong by `bad` ones."""
    good, bad = 2 * torch.eye(2), -2 * torch.eye(2)
    model = nn.Linear(2, 2, bias=False)
    reference = copy.deepcopy(model)
    with torch.no_grad():
        reference.weight.copy_(good if start_good else bad)
        model.weight.copy_(bad if start_good else good)
    model.train()
    proj = RadiusProjection(["weight"], "mars", 0.1, "cpu")
    batch = (torch.eye(2), torch.tensor([0, 1]))
    proj.projected(dict(model.named_parameters()), dict(reference.named_parameters()))
    before = proj.gamma.item()
    weight = model.weight.detach().clone()
    proj.radius_step(model, reference, batch)
    assert model.training and model.weight.grad is None and torch.equal(model.weight, weight)  # only gamma moved
    return before, proj.gamma.item()


def test_radius_shrinks_when_the_held_out_loss_prefers_the_pretrained_weights():
    before, after = radius_after_one_step(start_good=True)
    assert after < before


def test_radius_grows_when_the_held_out_loss_prefers_the_fine_tuned_weights():
    before, after = radius_after_one_step(start_good=False)
    assert after > before


def test_setup_rejects_a_configuration_that_is_plain_fine_tuning(tmp_path):
    with pytest.raises(BenchmarkError, match="plain fine-tuning"):
        run_smoke("tpgm", tmp_path, proj_freq=0, posthoc_iters=0)


def test_recipes_are_the_papers():
    assert TPGM.hparams_for("domainnet")["norm_mode"] == "mars" and TPGM.hparams_for("domainnet")["exclude_head"]
    imagenet = TPGM.hparams_for("imagenet")
    assert (imagenet["proj_freq"], imagenet["posthoc_iters"], imagenet["posthoc_norm_mode"]) == (0, 200, "l2")
    assert not imagenet["posthoc_exclude_head"]


def test_per_step_and_post_hoc_through_the_harness(tmp_path):
    record = run_smoke("tpgm", tmp_path, posthoc_iters=2)
    assert variants(record) == {"tpgm", "tpgm-posthoc"}


def test_radii_survive_a_checkpoint_round_trip():
    from benchmark.models import create_backbone
    from benchmark.engine import RunContext, frozen_copy

    from method_smoke import BACKBONE

    model = create_backbone(BACKBONE, ["a", "b"], 16, pretrained=False).model
    batches = [(torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 0, 1]))]
    ctx = RunContext(batches, batches, torch.device("cpu"), 2, "tiny", 0, reference=frozen_copy(model))
    method = TPGM(TPGM.hparams_for("tiny"))
    method.setup(model, ctx)
    with torch.no_grad():
        model.backbone[0].weight.add_(0.1)
    method.after_step(model, 0)
    state = method.state_dict()
    other = TPGM(TPGM.hparams_for("tiny"))
    other.setup(copy.deepcopy(model), RunContext(batches, batches, torch.device("cpu"), 2, "tiny", 0, reference=frozen_copy(model)))
    other.load_state_dict(state)
    assert other.per_step.initialized and torch.equal(other.per_step.gamma, method.per_step.gamma)
    assert len(other.per_step.optimizer.state_dict()["state"]) == 1


def selection(n: int = 10):
    """The run's selection loader (benchmark/harness/run.py): shuffled, in training-size batches (8)."""
    from benchmark.engine import loader
    from torch.utils.data import TensorDataset

    data = TensorDataset(torch.randn(n, 3, 16, 16, generator=torch.Generator().manual_seed(1)), torch.arange(n) % 2)
    return loader(data, 8, shuffle=True, generator=torch.Generator().manual_seed(0))


def tpgm_on_selection(**hp) -> TPGM:
    from benchmark.models import create_backbone
    from benchmark.engine import RunContext, frozen_copy

    from method_smoke import BACKBONE

    model = create_backbone(BACKBONE, ["a", "b"], 16, pretrained=False).model
    ctx = RunContext([], selection(), torch.device("cpu"), 2, "tiny", 0, reference=frozen_copy(model))
    method = TPGM({**TPGM.hparams_for("tiny"), **hp})
    method.setup(model, ctx)
    return method


def test_radius_steps_read_batches_of_the_official_size_not_the_training_batch():
    # Official radius loaders: batch_size = the per-GPU --batch_size, 64, on both recipes.
    assert TPGM.hparams_for("domainnet")["proj_batch_size"] == TPGM.hparams_for("imagenet")["proj_batch_size"] == 64
    method = tpgm_on_selection(proj_batch_size=3)
    # 10 selection images in batches of 3, the last one short, then a reshuffled pass.
    assert [len(method.held_out_batch()[1]) for _ in range(5)] == [3, 3, 3, 1, 3]


def test_radius_stream_resumes_mid_pass_exactly():
    uninterrupted = tpgm_on_selection(proj_batch_size=3)
    batches = [uninterrupted.held_out_batch() for _ in range(10)]  # 2.5 passes
    interrupted = tpgm_on_selection(proj_batch_size=3)
    for _ in range(5):  # the first batch of the second pass
        interrupted.held_out_batch()
    resumed = tpgm_on_selection(proj_batch_size=3)
    resumed.load_state_dict(interrupted.state_dict())
    for x, y in batches[5:]:
        rx, ry = resumed.held_out_batch()
        assert torch.equal(rx, x) and torch.equal(ry, y)
