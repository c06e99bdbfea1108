"""The imagenet suite on tiny fixture trees: label maps give exactly the expected accuracy, V2's integer
folders are mapped by value, ObjectNet is cropped and max-pooled, and wrong data fails in one line."""
import shutil

import pytest
import torch
from torchvision.datasets import ImageFolder

from benchmark.__main__ import main
from benchmark.data import cards, imagenet
from benchmark.data.folders import ImageListDataset
from benchmark.errors import BenchmarkError
from fixtures_cls import (IMAGENET_FIXTURE_INDICES, OBJECTNET_UNMAPPED_FOLDER, OUTSIDER, TO_TENSOR, OracleModel,
                          build_imagenet_tree, decode, fixture_suite, imagenet_fixture_sizes, score,
                          write_image)  # fmt: skip


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return build_imagenet_tree(tmp_path_factory.mktemp("imagenet"))


def suite_from(root, **sizes):
    return fixture_suite("imagenet", root, **sizes)


def test_suite_layout_and_disjoint_selection(tree):
    suite = suite_from(tree)
    assert suite.num_classes == len(IMAGENET_FIXTURE_INDICES)
    assert suite.classnames[0] == "goldfish" and suite.classnames[-1] == "banana"  # open_clip names, index 1 / 954
    assert [e.name for e in suite.evals] == ["imagenet", "imagenet-v2", "imagenet-a", "imagenet-r", "imagenet-sketch", "objectnet"]
    assert [e.role for e in suite.evals] == ["id"] + ["ood"] * 5
    train = {p for p, _ in suite.train.samples}
    selection = {p for p, _ in suite.selection.samples}
    assert len(train) == 9 * 3 and len(selection) == 9 and not train & selection
    assert all("/train/" in p for p in selection)  # held out of train, never the reported val
    # The hold-out of a class does not depend on which other classes are in the label space.
    small = suite_from(tree, wnids=",".join(imagenet.imagenet_wnids()[i] for i in (6, 954)), evals="a")
    assert {p for p, _ in small.selection.samples} <= selection


def test_oracle_is_exact_on_every_eval_set(tree):
    suite = suite_from(tree)
    model = OracleModel(IMAGENET_FIXTURE_INDICES)
    assert {e.name: score(model, e) for e in suite.all_evals()} == {e.name: 1.0 for e in suite.all_evals()}
    sizes = {e.name: len(e.dataset) for e in suite.evals}
    assert sizes == {"imagenet": 18, "imagenet-v2": 18, "imagenet-a": 8, "imagenet-r": 12, "imagenet-sketch": 18,
                     "objectnet": 6}  # 409+530 -> alarm_clock (4), 954 -> banana (2); air_freshener ignored


def test_subset_and_max_pool_maps_ignore_logits_outside_the_eval_classes(tree):
    """The oracle's strongest logit is always class 10, which is in none of A, R, ObjectNet: through their
    label maps accuracy stays exactly 1, while identity-mapped sets keep only class 10's own images (1/9)."""
    suite = suite_from(tree)
    model = OracleModel(IMAGENET_FIXTURE_INDICES, distractor=OUTSIDER)
    got = {e.name: score(model, e) for e in suite.evals}
    ninth = pytest.approx(1 / 9)
    assert got == {"imagenet": ninth, "imagenet-v2": ninth, "imagenet-a": 1.0, "imagenet-r": 1.0,
                   "imagenet-sketch": ninth, "objectnet": 1.0}  # fmt: skip


def test_v2_folders_are_integers_not_strings(tree):
    v2 = next(e for e in suite_from(tree).evals if e.name == "imagenet-v2")
    model = OracleModel(IMAGENET_FIXTURE_INDICES)
    assert score(model, v2) == 1.0
    # What ImageFolder (string-sorted folders: "1" < "10" < "100" < "11" < "2") would have produced:
    folder = ImageFolder(str(tree / "imagenetv2-matched-frequency-format-val"), transform=TO_TENSOR)
    assert folder.classes[:4] == ["1", "10", "100", "11"]
    assert score(model, type(v2)(v2.name, v2.role, folder)) < 0.5


def test_objectnet_border_is_cropped_before_the_transform(tree):
    objectnet = next(e for e in suite_from(tree).evals if e.name == "objectnet")
    assert objectnet.dataset[0][0].shape[-2:] == (8, 8)  # 12x12 on disk, 2 px cut from every side
    assert not any(OBJECTNET_UNMAPPED_FOLDER in p for p, _ in objectnet.dataset.samples)
    uncropped = ImageListDataset(objectnet.dataset.samples, TO_TENSOR, crop=0)
    model = OracleModel(IMAGENET_FIXTURE_INDICES)
    assert score(model, objectnet) == 1.0
    raw = torch.stack([uncropped[i][0] for i in range(len(uncropped))])
    assert not set(decode(raw).tolist()) & set(IMAGENET_FIXTURE_INDICES)  # the red frame spoils every image


def test_objectnet_mapping_facts():
    mapping = imagenet.objectnet_to_imagenet()
    assert len(mapping) == 113 and sum(len(g) for g in mapping.values()) == 125
    assert mapping["banana"] == [954] and mapping["alarm_clock"] == [409, 530]
    assert len(imagenet.subset_wnids("a")) == len(imagenet.subset_wnids("r")) == 200


def test_every_variant_has_a_card_with_its_counts():
    for v in imagenet.VARIANTS.values():
        assert set(cards.card(v.name)["counts"]) == {split or "test" for split in v.splits}, v.name
        assert v.location == cards.location(v.name)


def test_variants_are_found_where_their_cards_say(tmp_path, monkeypatch):
    root = build_imagenet_tree(tmp_path, variants=("imagenet", "sketch"))
    (root / "sketch").rename(root / "drawings")
    with pytest.raises(BenchmarkError, match="ImageNet-Sketch not found"):
        suite_from(root, evals="sketch")
    monkeypatch.setitem(cards.card("imagenet-sketch")["location"], "subdirs", ["drawings"])
    assert [e.name for e in suite_from(root, evals="sketch").evals] == ["imagenet", "imagenet-sketch"]


def test_missing_eval_set_is_one_line_and_evals_option_restricts(tmp_path):
    root = build_imagenet_tree(tmp_path, variants=("imagenet", "v2", "r", "sketch", "objectnet"))
    with pytest.raises(BenchmarkError, match=r"ImageNet-A not found .*imagenet-a.*people.eecs.berkeley.edu.*IMAGENET_A_DIR") as e:
        suite_from(root)
    assert "\n" not in str(e.value)
    suite = suite_from(root, evals="v2,r,sketch,objectnet")
    assert "imagenet-a" not in [x.name for x in suite.evals]


def test_partial_and_corrupt_data_fail_in_one_line(tmp_path):
    root = build_imagenet_tree(tmp_path)
    wnid = imagenet.imagenet_wnids()[954]
    shutil.rmtree(root / "sketch" / wnid)
    with pytest.raises(BenchmarkError, match=f"ImageNet-Sketch at .* partial: 1 of 9 class folders missing .*{wnid}"):
        suite_from(root)
    (root / "sketch" / wnid).mkdir()
    with pytest.raises(BenchmarkError, match="class folders hold no images"):
        suite_from(root)
    write_image(root / "sketch" / wnid / "0.JPEG", 954)
    (root / "sketch" / wnid / "1.JPEG").write_bytes(b"not a jpeg")
    sketch = next(e for e in suite_from(root).evals if e.name == "imagenet-sketch")
    with pytest.raises(BenchmarkError, match=r"cannot read image .*1\.JPEG"):
        score(OracleModel(IMAGENET_FIXTURE_INDICES), sketch)


def test_bad_options_are_one_line_errors(tree):
    with pytest.raises(BenchmarkError, match="unknown imagenet size option"):
        suite_from(tree, n_train=5)
    with pytest.raises(BenchmarkError, match="wnids=.*n99999999"):
        suite_from(tree, wnids="n01443537,n99999999")
    with pytest.raises(BenchmarkError, match="evals=.*'c'"):
        suite_from(tree, evals="v2,c")
    with pytest.raises(BenchmarkError, match="selection_per_class=4 needs more"):
        suite_from(tree, selection_per_class=4)


def test_count_check_against_the_card(tmp_path, monkeypatch):
    root = build_imagenet_tree(tmp_path, variants=("a",), eval_per_class=2)
    pos = {w: i for i, w in enumerate(imagenet.imagenet_wnids())}
    variant = imagenet.VARIANTS["a"]
    universe = {w: pos[w] for w in imagenet.resolve_universe(imagenet_fixture_sizes()["wnids"])}
    counts = cards.card("imagenet-a")["counts"]  # what the check reads
    monkeypatch.setitem(counts, "test", 8)
    assert len(variant.scan(root / "imagenet-a", universe, full=True)[""]) == 8
    monkeypatch.setitem(counts, "test", 7_500)
    with pytest.raises(BenchmarkError, match="ImageNet-A has 8 images, expected 7500 .*partial"):
        variant.scan(root / "imagenet-a", universe, full=True)


def test_prepare_reports_ok_and_names_problems(tmp_path, monkeypatch, capsys):
    a_indices = [imagenet.imagenet_wnids().index(w) for w in imagenet.subset_wnids("a")]
    root = build_imagenet_tree(tmp_path, indices=a_indices, eval_per_class=1, variants=("a",))
    monkeypatch.setitem(cards.card("imagenet-a")["counts"], "test", 200)
    assert main(["prepare", "imagenet-a", "--data-root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "ok  ImageNet-A: 200 images (card: 200)" in out and "every image decodes" in out
    victim = next((root / "imagenet-a" / imagenet.subset_wnids("a")[5]).iterdir())
    victim.write_bytes(b"\xff\xd8 truncated")
    report = imagenet.prepare_variant("a", root, progress=False)
    assert not report.ok and f"1 unreadable images in ImageNet-A, e.g. {victim}" in report.text
    shutil.rmtree(victim.parent)
    report = imagenet.prepare_variant("a", root, progress=False)
    assert not report.ok and "1 of 200 class folders missing" in report.text
    report = imagenet.prepare_variant("v2", tmp_path / "nothing", progress=False)
    assert not report.ok and "imagenetv2-matched-frequency" in report.text and "IMAGENET_V2_DIR" in report.text


def test_flat_val_folder_is_named(tmp_path):
    root = build_imagenet_tree(tmp_path, variants=("imagenet", "v2"))
    val = root / "imagenet" / "val"
    for f in list(val.rglob("*.JPEG")):
        f.rename(val / f.name)
        if not any(f.parent.iterdir()):
            f.parent.rmdir()
    with pytest.raises(BenchmarkError, match="ImageNet-1k val at .* has none of the 9 class folders .*not sorted into class folders"):
        suite_from(root, evals="v2")
