"""Backbones keep the classifier they were pretrained with as a frozen pretraining head beside the model (FSR measures
its function-space distance through it): the right head with its pretrained weights, never trained, in no method's
parameter groups and in no state dict; none without pretrained weights; FSR on Lite0 uses it by default."""
import copy
import dataclasses
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from benchmark.engine import RunContext, frozen_copy, loader
from benchmark.errors import BenchmarkError
from benchmark.harness.plan import RunConfig, resolve_hparams
from benchmark.harness.run import execute
from benchmark.models import BACKBONES, create_backbone
from benchmark.models.base import Built
from benchmark.models.cnn import lite0_state_dict
from method_smoke import TinyCNN, run_smoke, stand_in_pretraining_head, tiny_suite
from methods import METHODS

HEADLESS = "tiny-cnn-headless-test"


@pytest.fixture(scope="module")
def lite0() -> Built:
    torch.manual_seed(0)
    return create_backbone("lite0", list("abc"), 32)  # tests that train take a copy


def assert_frozen_and_apart(built: Built, out_features: int) -> None:
    head = built.pretraining_head
    assert isinstance(head, nn.Linear) and head.out_features == out_features and not head.training
    assert not any(p.requires_grad for p in head.parameters())
    model_tensors = {t.data_ptr() for t in built.model.state_dict().values()}
    assert not any(p.data_ptr() in model_tensors for p in head.parameters())


def test_lite0_keeps_its_imagenet_classifier_as_the_pretraining_head(lite0):
    import timm

    built = lite0
    assert_frozen_and_apart(built, 1000)
    # The pretrained function: H(features) is what the whole ImageNet network computes.
    net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    net.load_state_dict(lite0_state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(built.pretraining_head(built.model.eval().features(x)), net.eval()(x), atol=1e-5)
    # The classifier's state dict is unchanged (checkpoints, `benchmark eval`), and random init keeps no head.
    random = create_backbone("lite0", list("abc"), 32, pretrained=False)
    assert random.pretraining_head is None and random.model.state_dict().keys() == built.model.state_dict().keys()


def test_timm_checkpoint_keeps_its_classifier_and_random_init_none(tmp_path):
    import timm

    net = timm.create_model("test_resnet", pretrained=False)
    torch.save(net.state_dict(), tmp_path / "w.pth")
    built = create_backbone(f"timm:test_resnet@{tmp_path / 'w.pth'}", ["a", "b"], 32)
    assert_frozen_and_apart(built, 1000)
    assert torch.equal(built.pretraining_head.weight, net.get_classifier().weight)
    assert create_backbone("timm:test_resnet", ["a", "b"], 32, pretrained=False).pretraining_head is None


def test_timm_task_head_reads_what_the_classifier_read():
    # MobileNetV3's classifier reads head_hidden_size (1024) features, not num_features (288).
    built = create_backbone("timm:mobilenetv3_small_050", ["a", "b"], 32, pretrained=False)
    with torch.no_grad():
        assert built.model.eval()(torch.randn(2, 3, 64, 64)).shape == (2, 2)


def test_torchvision_keeps_its_final_linear_as_the_pretraining_head(tmp_path, monkeypatch):
    import torchvision

    weights = torchvision.models.get_model_weights("mobilenet_v3_small").DEFAULT
    net = torchvision.models.get_model("mobilenet_v3_small", weights=None)
    (tmp_path / "checkpoints").mkdir()
    torch.save(net.state_dict(), tmp_path / "checkpoints" / Path(weights.url).name)  # stands in for the download
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    built = create_backbone("torchvision:mobilenet_v3_small", ["a", "b"], 32)
    assert_frozen_and_apart(built, 1000)
    assert torch.equal(built.pretraining_head.weight, net.classifier[3].weight)
    assert not any(k.startswith("classifier.3") for k in built.model.backbone.state_dict())


def test_the_pretraining_head_is_in_no_methods_parameter_groups():
    data = loader(tiny_suite().train, 8)
    for name in METHODS.names():
        cls = METHODS.get(name)
        if cls.needs_text_tower or name == "zeroshot":  # CLIP only
            continue
        torch.manual_seed(0)
        built = TinyCNN.build(SimpleNamespace(image_size=16, classnames=["dark", "bright"]))
        model, head = built.model, {id(p) for p in built.pretraining_head.parameters()}
        ctx = RunContext(data, data, torch.device("cpu"), 2, "tiny", 0, reference=frozen_copy(model),
                         pretraining_head=built.pretraining_head)  # fmt: skip
        method = cls(resolve_hparams("tiny", cls, {}))
        method.setup(model, ctx)
        assert not any(id(p) in head for group in method.param_groups(model) for p in group["params"]), name


def test_fsr_run_measures_through_the_pretraining_head_and_leaves_it_unchanged(tmp_path, monkeypatch):
    seen = {}
    setup = METHODS.get("fsr").setup
    monkeypatch.setattr(METHODS.get("fsr"), "setup", lambda self, model, ctx: (seen.update(ctx=ctx), setup(self, model, ctx)))
    record = run_smoke("fsr", tmp_path, epochs=2, batch_size=4)
    assert record["config"]["hparams"]["fsr_distance"] == "head" and max(record["curves"]["train_fsr_distance"]) > 0
    assert torch.equal(seen["ctx"].pretraining_head.weight, stand_in_pretraining_head(8).weight)


def test_fsr_on_a_backbone_without_a_pretraining_head_is_a_one_line_error(tmp_path):
    class Headless:
        transforms = TinyCNN.transforms

        @staticmethod
        def build(req):
            built = TinyCNN.build(req)
            return Built(built.model, built.train_transform, built.eval_transform)

    if HEADLESS not in BACKBONES:
        BACKBONES.register(HEADLESS, "tests only")(Headless)
    cfg = RunConfig(suite="tiny", method="fsr", backbone=HEADLESS, seed=0, image_size=16,
                    hparams=resolve_hparams("tiny", METHODS.get("fsr"), {"epochs": 1}), pretrained=False)  # fmt: skip
    with pytest.raises(BenchmarkError, match="^fsr_distance=head needs the backbone's pretraining head") as err:
        execute(cfg, tiny_suite(), tmp_path, progress=False)
    assert "\n" not in str(err.value)
    features = resolve_hparams("tiny", METHODS.get("fsr"), {"epochs": 1, "fsr_distance": "features"})
    execute(dataclasses.replace(cfg, hparams=features), tiny_suite(), tmp_path, progress=False)


def test_fsr_on_lite0_uses_the_imagenet_head_by_default(lite0):
    built = copy.deepcopy(lite0)
    model, head = built.model, built.pretraining_head
    before = head.weight.clone()
    ctx = RunContext(None, None, torch.device("cpu"), 3, "test", 0, reference=frozen_copy(model), pretraining_head=head)
    fsr = METHODS.get("fsr")
    method = fsr(dict(fsr.HPARAMS))
    method.setup(model, ctx)
    assert method.hp["fsr_distance"] == "head" and method.pretraining_head is head
    torch.manual_seed(0)
    batch = (torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0]))
    model.train()
    terms = method.loss(model, batch)
    assert terms["fsr_distance"].item() == 0.0  # the pretrained weights compute the pretrained function
    optimizer = torch.optim.SGD(method.param_groups(model), lr=0.1)
    sum(terms.values()).backward()
    optimizer.step()
    assert head.weight.grad is None and torch.equal(head.weight, before)
    assert method.loss(model, batch)["fsr_distance"].item() > 1e-6
