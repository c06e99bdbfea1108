"""FSR (our reading of the abstract): the distance vanishes at the pretrained weights and grows after a step,
the consistency term vanishes for an identity perturbation, and the terms match hand computations; the default
distance is measured through the pretraining head, which no gradient step changes."""
import math

import pytest
import torch
from torch import nn

from benchmark.models.base import Built, Classifier
from benchmark.errors import BenchmarkError
from benchmark.engine import RunContext, frozen_copy
from methods import METHODS
from methods.fsr import amplitude_mix, feature_distance, kl_distance, regulariser_mode, symmetric_kl


def make(hp=None, head_is_pretrained=False, pretraining_head=True):
    torch.manual_seed(0)
    # Conv + BatchNorm: the eval-mode regulariser must not be fooled by batch statistics.
    body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    model = Classifier(body, nn.Linear(4, 3))
    head = Built(model, None, None, pretraining_head=nn.Linear(4, 5)).pretraining_head if pretraining_head else None
    ctx = RunContext(reference=frozen_copy(model), train_loader=None, selection_loader=None, device=torch.device("cpu"),
                     num_classes=3, suite="test", seed=0, head_is_pretrained=head_is_pretrained,
                     pretraining_head=head)  # fmt: skip
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


@pytest.mark.parametrize("distance", ["features", "head"])
def test_distance_zero_at_init_and_positive_after_a_step(distance):
    model, method, batch = make({"fsr_distance": distance})
    terms = method.loss(model, batch)
    assert terms["fsr_distance"].item() == 0.0
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    sum(terms.values()).backward()
    opt.step()
    assert method.loss(model, batch)["fsr_distance"].item() > 1e-6
    assert method.pretraining_head is (None if distance == "features" else method.ctx.pretraining_head)
    assert model.training and model.backbone[1].training  # the eval-mode passes restore train mode


@pytest.mark.parametrize("batch_stats", [True, False])
def test_bn_running_statistics_move_the_distance_only_in_eval_mode(batch_stats):
    # The feature distance: the most sensitive to the normalisation, which both distances share.
    model, method, batch = make({"fsr_batch_stats": batch_stats, "fsr_distance": "features"})
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


def test_head_distance_through_the_pretraining_head_matches_a_hand_computation_and_leaves_the_head_alone():
    # phi(x) = W x: the model's W puts ln 3 on feature 0, the reference's W0 = 0; H = identity, so the logits
    # are the features. T = 2: p = softmax(ln 3 / 2, 0) = (sqrt3, 1) / (sqrt3 + 1), p0 uniform, and
    # KL(p0 || p) * T^2 = 4 * sum_i 1/2 ln(1/2 / p_i) = 2 ln((sqrt3 + 1)^2 / (4 sqrt3)).
    model = Classifier(nn.Linear(2, 2, bias=False), nn.Linear(2, 3))
    nn.init.zeros_(model.backbone.weight)
    reference = frozen_copy(model)
    with torch.no_grad():
        model.backbone.weight[0, 0] = math.log(3.0)
    head = Built(model, None, None, pretraining_head=nn.Linear(2, 2)).pretraining_head
    with torch.no_grad():
        head.weight.copy_(torch.eye(2))
        head.bias.zero_()
    ctx = RunContext(None, None, torch.device("cpu"), 3, "test", 0, reference=reference, pretraining_head=head)
    fsr = METHODS.get("fsr")
    method = fsr({**fsr.HPARAMS, "fsr_amp_eta": 0.0, "fsr_lambda": 0.5})  # eta 0: x~ = x, the hand case
    method.setup(model, ctx)
    distance = method.loss(model, (torch.tensor([[1.0, 0.0]]), torch.tensor([0])))["fsr_distance"]
    root3 = math.sqrt(3.0)
    assert distance.item() == pytest.approx(0.5 * 2 * math.log((root3 + 1) ** 2 / (4 * root3)), rel=1e-6)
    distance.backward()
    # The gradient reaches the backbone through H: d/dz_0 [KL * T^2] = T (p_0 - 1/2), times fsr_lambda; H (frozen,
    # not the model's) gets none and is unchanged.
    assert model.backbone.weight.grad[0, 0].item() == pytest.approx(0.5 * 2 * (root3 / (root3 + 1) - 0.5), rel=1e-6)
    assert head.weight.grad is None and not head.training
    assert torch.equal(head.weight, torch.eye(2)) and not any(p is head.weight for p in model.parameters())


def test_head_distance_needs_a_pretraining_head_and_bad_choices_are_user_errors():
    assert make(head_is_pretrained=True, pretraining_head=False)[1].pretraining_head is None  # the task head's
    with pytest.raises(BenchmarkError, match=r"^fsr_distance=head needs the backbone's pretraining head .*"
                                             r"use --set fsr_distance=features$"):  # fmt: skip
        make(pretraining_head=False)
    assert make({"fsr_distance": "features"}, pretraining_head=False)[1].pretraining_head is None
    for removed in ("auto", "kl", "l1"):
        with pytest.raises(BenchmarkError, match="fsr_distance 'auto'|fsr_distance 'kl'|fsr_distance 'l1'"):
            make({"fsr_distance": removed})


def test_clip_zero_shot_head_gives_the_distance_zero_at_init_and_positive_after_a_step():
    from tests.clip_ctx import step, tiny_clip_context

    model, method, batch = tiny_clip_context(METHODS.get("fsr"), {})
    assert method.hp["fsr_distance"] == "head" and method.pretraining_head is None  # each model's own head
    model.train()
    # Not bit-exact: torch's attention takes its fused path only where no gradient is needed (the reference).
    assert abs(method.loss(model, batch)["fsr_distance"].item()) < 1e-6
    step(model, method, batch, lr=1e-2)
    assert method.loss(model, batch)["fsr_distance"].item() > 1e-4
