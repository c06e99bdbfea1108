"""The imagenet-c suite on a tiny copy of the published layout, and mCE on a hand-computed case."""
import pytest
import torch
from torchvision import transforms

from benchmark.corruption import corruptions
from benchmark.data import SuiteOptions, build_suite, cards, imagenet, imagenet_c
from benchmark.errors import BenchmarkError
from benchmark.report import mce
from benchmark.engine import accuracy, predict
from fixtures_cls import OracleModel, build_imagenet_tree, imagenet_fixture_sizes, write_image

INDICES = (1, 10, 954)
CORRUPTED = {("fog", 1): 2, ("fog", 2): 2, ("contrast", 1): 3, ("contrast", 2): 1}  # images per wnid


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = build_imagenet_tree(tmp_path_factory.mktemp("inc"), INDICES, variants=("imagenet",))
    wnids = imagenet.imagenet_wnids()
    for (name, severity), n in CORRUPTED.items():
        for i in INDICES:
            for k in range(n):
                write_image(root / "imagenet-c" / name / str(severity) / wnids[i] / f"ILSVRC2012_val_{i:05d}{k}.JPEG", i)
    return root


def suite_from(root, **sizes):
    sizes = {**imagenet_fixture_sizes(INDICES), "corruptions": "fog,contrast", "severities": (1, 2), **sizes}
    opts = SuiteOptions(data_root=root, train_transform=transforms.ToTensor(), eval_transform=transforms.ToTensor(),
                        sizes=sizes, progress=False)  # fmt: skip
    return build_suite("imagenet-c", opts)


def test_layout_reader_and_labels(tree):
    suite = suite_from(tree)
    assert [(e.name, e.role, e.group) for e in suite.evals] == [
        ("imagenet", "id", "imagenet"), ("fog@1", "ood", "fog"), ("fog@2", "ood", "fog"),
        ("contrast@1", "ood", "contrast"), ("contrast@2", "ood", "contrast")]  # fmt: skip
    assert {e.name: len(e.dataset) for e in suite.evals[1:]} == {f"{c}@{s}": n * len(INDICES) for (c, s), n in CORRUPTED.items()}
    assert all(f"/imagenet-c/{e.group}/{e.name[-1]}/" in p for e in suite.evals[1:] for p, _ in e.dataset.samples)
    model = OracleModel(INDICES)  # scores 1.0 only if every image carries its own wnid's label
    for e in suite.all_evals():
        assert accuracy(*predict(model, e.dataset, e.label_map, torch.device("cpu"), batch_size=16)) == 1.0, e.name
    assert [e.name for e in suite_from(tree, corruptions="contrast", severities=2).evals] == ["imagenet", "contrast@2"]


def test_missing_parts_name_the_archive_to_unpack(tree):
    with pytest.raises(BenchmarkError, match="no snow/ folder: unpack weather.tar"):
        suite_from(tree, corruptions="fog,snow")
    with pytest.raises(BenchmarkError, match="fog@3: .* is missing; re-unpack weather.tar"):
        suite_from(tree, severities=(1, 3))
    with pytest.raises(BenchmarkError, match="severities"):
        suite_from(tree, severities=(0,))
    report = imagenet_c.prepare(tree)  # the fixture is far from the 50,000 images per set of the release
    assert not report.ok and "missing/bad:" in report.text


def rows(errors):
    """Eval rows as records hold them, from {corruption: [error at severity 1..5]}."""
    out = [{"eval": "imagenet", "role": "id", "metric": "acc", "value": 0.1}]
    for c, errs in errors.items():
        out += [{"eval": f"{c}@{s}", "role": "ood", "group": c, "metric": "acc", "value": 1 - e} for s, e in enumerate(errs, 1)]
    return out


def test_mce_hand_computed():
    alexnet = mce.baselines()["alexnet"]["error"]
    errors = {c: [alexnet[c]] * 5 for c in corruptions.CORRUPTIONS}  # AlexNet itself: every CE is 100
    assert mce.mce(rows(errors))["mce"] == pytest.approx(100.0)
    errors["fog"] = [0.1, 0.2, 0.3, 0.4, 0.5]  # CE_fog = 1.5 / (5 * 0.819324) = 36.6156 %
    got = mce.mce(rows(errors))
    assert got["ce"]["fog"] == pytest.approx(36.61555, abs=1e-4)
    assert got["mce"] == pytest.approx((14 * 100 + 36.61555) / 15, abs=1e-4)  # 95.7744


def test_mce_refuses_incomplete_grids_and_unknown_baselines():
    alexnet = mce.baselines()["alexnet"]["error"]
    errors = {c: [alexnet[c]] * 5 for c in corruptions.CORRUPTIONS}
    incomplete = [r for r in rows(errors) if r["eval"] != "fog@4"]
    with pytest.raises(BenchmarkError, match="missing 1: fog@4"):
        mce.mce(incomplete)
    with pytest.raises(BenchmarkError, match="unknown mCE baseline 'resnet'; known: alexnet"):
        mce.mce(rows(errors), "resnet")


def test_card_lists_the_suites_corruptions():
    card = cards.card("imagenet-c")
    assert tuple(card["corruptions"]) == corruptions.CORRUPTIONS
    assert [c for names in card["archives"].values() for c in names] == card["corruptions"]  # each in one archive
    assert card["counts"]["sets"] == len(corruptions.CORRUPTIONS) * len(corruptions.SEVERITIES)
    assert card["counts"]["per_set"] * card["counts"]["sets"] == card["counts"]["test"]
    assert set(mce.baselines()["alexnet"]["error"]) == set(corruptions.CORRUPTIONS)


def test_set_sizes_are_checked_against_the_card(tree, monkeypatch):
    wnids = imagenet.imagenet_wnids()
    pos = {wnids[i]: j for j, i in enumerate(INDICES)}
    with pytest.raises(BenchmarkError, match="ImageNet-C fog@1 has 6 images, expected 50000"):
        imagenet_c.scan(tree / "imagenet-c", pos, ["fog"], [1], full=True)
    monkeypatch.setitem(cards.card("imagenet-c")["counts"], "per_set", 6)
    assert len(imagenet_c.scan(tree / "imagenet-c", pos, ["fog"], [1], full=True)["fog", 1]) == 6
