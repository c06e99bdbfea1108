"""FSR (our reading of the abstract): the distance vanishes at the pretrained weights and grows after a step,
the consistency term vanishes for an identity perturbation, and the terms match hand computations."""
import math

import pytest
import torch
from torch import nn

from benchmark.models.base import Classifier
from benchmark.errors import BenchmarkError
from benchmark.engine import RunContext, frozen_copy
from methods import METHODS
from methods.fsr import amplitude_mix, feature_distance, kl_distance, regulariser_mode, symmetric_kl


def make(hp=None, head_is_pretrained=False):
    torch.manual_seed(0)
    # Conv + BatchNorm: the eval-mode regulariser must not be fooled by batch statistics.
    body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    model = Classifier(body, nn.Linear(4, 3))
    ctx = RunContext(reference=frozen_copy(model), train_loader=None, selection_loader=None, device=torch.device("cpu"),
                     num_classes=3, suite="test", seed=0, head_is_pretrained=head_is_pretrained)  # fmt: skip
    method = METHODS.get("fsr")({**METHODS.get("fsr").HPARAMS, **(hp or {})})
    method.setup(model, ctx)
    model.train()
    batch = (torch.randn(6, 3, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2]))
    return model, method, batch


def test_hand_computed_terms():
    assert feature_distance(torch.tensor([[3.0, 5.0]]), torch.tensor([[3.0, 4.0]])).item() == pytest.approx(1 / 25)
    # p = softmax([ln 3, 0]) = (3/4, 1/4); reference uniform: KL = 1/2 ln(1/2 / 3/4) + 1/2 ln(1/2 / 1/4)
    z, z0 = torch.tensor([[math.log(3.0), 0.0]]), torch.zeros(1, 2)
    assert kl_distance(z, z0, temperature=1.0).item() == pytest.approx(0.5 * math.log(4 / 3))
    # symmetric: (3/4 - 1/2) ln(3/4 / 1/2) + (1/4 - 1/2) ln(1/4 / 1/2) = 1/4 ln 3
    assert symmetric_kl(z, z0).item() == pytest.approx(0.25 * math.log(3.0))
    assert symmetric_kl(z0, z).item() == pytest.approx(0.25 * math.log(3.0))


@pytest.mark.parametrize("distance", ["features", "kl"])
def test_distance_zero_at_init_and_positive_after_a_step(distance):
    model, method, batch = make({"fsr_distance": distance})
    terms = method.loss(model, batch)
    assert terms["fsr_distance"].item() == 0.0
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    sum(terms.values()).backward()
    opt.step()
    assert method.loss(model, batch)["fsr_distance"].item() > 1e-6
    assert model.training and model.backbone[1].training  # the eval-mode passes restore train mode


@pytest.mark.parametrize("batch_stats", [True, False])
def test_bn_running_statistics_move_the_distance_only_in_eval_mode(batch_stats):
    model, method, batch = make({"fsr_batch_stats": batch_stats})
    with torch.no_grad():
        model(batch[0] * 3 + 1)  # a train-mode pass: new BN running statistics, same weights
    running = model.backbone[1].running_mean.clone(), model.backbone[1].num_batches_tracked.clone()
    distance = method.loss(model, batch)["fsr_distance"].item()
    assert (distance == 0.0) if batch_stats else (distance > 1e-3)
    assert torch.equal(method.reference.backbone[1].running_mean, torch.zeros(4))  # reference untouched
    assert method.reference.backbone[1].track_running_stats and not method.reference.training


def test_regulariser_passes_leave_running_statistics_alone():
    model, method, batch = make()
    bn = model.backbone[1]
    before = bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone()
    with regulariser_mode([model], batch_stats=True):
        model.features(batch[0] * 5)
    assert all(torch.equal(a, b) for a, b in zip(before, (bn.running_mean, bn.running_var, bn.num_batches_tracked)))
    assert model.training and bn.training and bn.track_running_stats


def test_consistency_zero_for_identity_perturbation():
    model, method, batch = make({"fsr_amp_eta": 0.0})
    assert method.loss(model, batch)["fsr_consistency"].item() == 0.0
    _, method, batch = make()
    assert method.loss(model, batch)["fsr_consistency"].item() > 0


def test_amplitude_mix_keeps_phase_and_is_identity_with_itself():
    torch.manual_seed(1)
    x = torch.randn(4, 3, 8, 8)
    mixed = amplitude_mix(x, 1.0)
    assert mixed.shape == x.shape and not torch.allclose(mixed, x)
    # where the amplitude is not ~0, the phase is the original one
    spec, spec_mixed = torch.fft.fft2(x), torch.fft.fft2(mixed)
    keep = (spec.abs() > 1e-3) & (spec_mixed.abs() > 1e-3)
    assert torch.allclose(torch.polar(torch.ones_like(spec.abs()), spec.angle())[keep],
                          torch.polar(torch.ones_like(spec.abs()), spec_mixed.angle())[keep], atol=1e-3)  # fmt: skip
    assert torch.allclose(amplitude_mix(x[:1], 1.0), x[:1], atol=1e-5)  # a batch of one mixes with itself


def test_auto_distance_follows_the_head_and_bad_choice_is_a_user_error():
    assert make()[1].distance == "features"
    assert make(head_is_pretrained=True)[1].distance == "kl"
    with pytest.raises(BenchmarkError, match="fsr_distance"):
        make({"fsr_distance": "l1"})


def test_clip_head_gives_kl_distance_zero_at_init_and_positive_after_a_step():
    from tests.clip_ctx import step, tiny_clip_context

    model, method, batch = tiny_clip_context(METHODS.get("fsr"), {})
    assert method.distance == "kl"
    model.train()
    # Not bit-exact: torch's attention takes its fused path only where no gradient is needed (the reference).
    assert abs(method.loss(model, batch)["fsr_distance"].item()) < 1e-6
    step(model, method, batch, lr=1e-2)
    assert method.loss(model, batch)["fsr_distance"].item() > 1e-4
