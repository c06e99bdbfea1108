"""Backbone families clip / timm / torchvision: heads, zero-shot head maths, offline errors, full runs."""
import pytest
import torch
import torch.nn.functional as F

from benchmark.report import records
from benchmark.models import backbone_transforms, create_backbone
from benchmark.harness.plan import RunConfig, resolve_hparams
from benchmark.errors import BenchmarkError
from benchmark.harness.run import execute, prepare_suite
from methods import METHODS
from tests import tiny_cls
from tests.clip_ctx import TINY_CLIP


@pytest.fixture(scope="module")
def clip_built():
    torch.manual_seed(0)
    return create_backbone(TINY_CLIP, ["cat", "dog", "car"], 32)


def test_zero_shot_head_is_the_scaled_normalised_mean_of_template_embeddings(clip_built):
    model, text = clip_built.model, clip_built.extras["text"]
    assert clip_built.head_is_pretrained and len(text.templates) == 80
    with torch.no_grad():  # hand-check class 1 ("dog")
        emb = F.normalize(model.text.encode_text(text.tokenizer([t("dog") for t in text.templates])), dim=-1)
        row = model.logit_scale * F.normalize(emb.mean(0), dim=0)
    assert torch.allclose(model.head.weight[1], row, atol=1e-5)
    assert torch.all(model.head.bias == 0)


def test_clip_logits_are_scaled_cosine_similarities(clip_built):
    model = clip_built.model.eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        image = model.backbone.visual(x)
        cos = F.normalize(image, dim=-1) @ F.normalize(model.head.weight, dim=-1).T
        assert torch.allclose(model(x), model.logit_scale * cos, atol=1e-4)
        assert torch.allclose(model.features(x).norm(dim=-1), torch.ones(4))


def test_clip_text_tower_is_frozen_and_the_image_tower_shared(clip_built):
    model = clip_built.model
    assert not any(p.requires_grad for p in model.text.parameters())
    assert all(p.requires_grad for p in model.backbone.parameters())
    assert not hasattr(model.text, "visual")  # one image tower, in the classifier
    assert any(k.startswith("text.") for k in model.state_dict())


def test_cheap_transforms_match_the_built_ones():
    train, evaluate = backbone_transforms(TINY_CLIP, 224)
    assert "CenterCrop(size=(32, 32))" in repr(evaluate) and "RandomResizedCrop" in repr(train)
    train, evaluate = backbone_transforms("clip:ViT-B-32/openai", 64)  # known without any weights
    assert "CenterCrop(size=(224, 224))" in repr(evaluate)


@pytest.mark.parametrize("name, expected", [
    ("clip:ViT-B-32/openai", "weights are not available locally"),
    ("clip:ViT-B-32", "needs weights"),
    ("clip:NoSuchNet/openai", "open_clip.list_models()"),
    ("clip:ViT-B-32/not-a-tag", "not a pretrained tag"),
    ("timm:test_resnet", "cannot load pretrained weights for timm:test_resnet"),
    ("timm:nonet", "timm.list_models"),
    ("timm:test_resnet@/nonexistent.pth", "not found"),
    ("torchvision:mobilenet_v3_small", "not in the torch hub cache"),
    ("torchvision:nonet", "torchvision.models.list_models()"),
    ("nofamily:x", "unknown backbone 'nofamily'; valid: clip, "),
])  # fmt: skip
def test_unavailable_or_unknown_backbones_are_one_line_errors(name, expected, monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # an empty torch hub cache
    with pytest.raises(BenchmarkError) as err:
        create_backbone(name, ["a", "b"], 32)
    assert expected in str(err.value) and "\n" not in str(err.value)
    if name.startswith("nofamily"):
        assert all(f in str(err.value) for f in (" lite0", " timm", " torchvision"))


@pytest.mark.parametrize("name, features", [("timm:test_resnet", 96), ("torchvision:mobilenet_v3_small", 1024)])
def test_timm_and_torchvision_build_without_weights(name, features):
    built = create_backbone(name, ["a", "b", "c"], 32, pretrained=False)
    assert built.model.head.in_features == features and built.model.head.out_features == 3
    assert not built.head_is_pretrained
    with torch.no_grad():
        assert built.model.eval()(torch.randn(2, 3, 160, 160)).shape == (2, 3)


def test_timm_checkpoint_file_is_loaded(tmp_path):
    import timm

    net = timm.create_model("test_resnet", pretrained=False)
    torch.save(net.state_dict(), tmp_path / "w.pth")
    built = create_backbone(f"timm:test_resnet@{tmp_path / 'w.pth'}", ["a", "b"], 32)
    assert torch.equal(built.model.backbone.conv1[0].weight, net.conv1[0].weight)


@pytest.mark.parametrize("backbone", ["timm:test_resnet", "torchvision:shufflenet_v2_x0_5"])
def test_full_run_through_timm_and_torchvision(backbone, monkeypatch, tmp_path):
    suite_name = tiny_cls.register(monkeypatch)
    hp = resolve_hparams(suite_name, METHODS.get("ft"), {"epochs": 1, "batch_size": 32})
    cfg = RunConfig(suite=suite_name, method="ft", backbone=backbone, seed=0, image_size=32, hparams=hp, pretrained=False)
    suite = prepare_suite(cfg, None, progress=False, workers=1)
    outcome = execute(cfg, suite, tmp_path, progress=False)
    rows = {(r["variant"], r["eval"]): r["n"] for r in outcome.record["evals"]}
    assert rows == {("ft", "selection"): 6, ("ft", "clean"): 9, ("ft", "inverted"): 9}
    assert records.read_record(outcome.path)["config"]["backbone"] == backbone


def test_full_run_through_clip_cli(monkeypatch, tmp_path):
    tiny_cls.register(monkeypatch)
    assert tiny_cls.cli_run(tmp_path, "ft", TINY_CLIP) == 0
    (path,) = (tmp_path / "runs" / tiny_cls.NAME).glob("ft-*.json")
    rec = records.read_record(path)
    assert {r["eval"] for r in rec["evals"]} == {"selection", "clean", "inverted"} and rec["curves"]["train_ce"]


def test_clip_checkpoint_file_loads_and_its_zero_shot_head_is_cached(tmp_path, monkeypatch):
    import open_clip

    from benchmark.models.clip import open_clip as registered

    registered()  # adds the tiny config
    monkeypatch.setenv("OODBENCH_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(1)
    clip = open_clip.create_model("oodbench-tiny-clip", pretrained=None)
    torch.save(clip.state_dict(), tmp_path / "tiny.pt")
    name = f"clip:oodbench-tiny-clip/{tmp_path / 'tiny.pt'}"
    first = create_backbone(name, ["cat", "dog"], 32).model
    assert torch.equal(first.backbone.visual.conv1.weight, clip.visual.conv1.weight)
    assert len(list((tmp_path / "cache" / "zeroshot-heads").glob("*.pt"))) == 1

    def no_text_passes(*args, **kwargs):
        raise AssertionError("the cached head should have been used")

    monkeypatch.setattr(open_clip, "build_zero_shot_classifier", no_text_passes)
    second = create_backbone(name, ["cat", "dog"], 32).model
    assert torch.equal(first.head.weight, second.head.weight)
    with pytest.raises(AssertionError):  # other class names: a different head, not the cached one
        create_backbone(name, ["cat", "car"], 32)
