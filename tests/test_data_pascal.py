"""PASCAL-Context (semseg, human parts) and VOC 2012 adapters on tiny fixture trees in the real layouts."""
import numpy as np
import pytest
import scipy.io
from PIL import Image

from benchmark.models.base import simple_transforms
from benchmark.data import SuiteOptions, build_suite, cards
from benchmark.data.pascal import IGNORE, PERSON, prepare_context, read_human_parts
from benchmark.errors import BenchmarkError
from benchmark.data.segmentation import LOSS_IGNORE

H, W = 40, 48  # imagecorruptions needs >= 32 px
TINY = {"corruptions": ("fog",), "severities": (1,), "selection_fraction": 0.34}


def jpeg(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (H, W, 3), dtype=np.uint8)).save(path)


def label_png(path, mask, palette=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(mask.astype(np.uint8), mode="L")
    if palette:
        im = im.convert("P")
    im.save(path)


def anno_mat(path, objects):
    """A Pascal-Part annotation: anno.objects(.class, .class_ind, .mask, .parts(.part_name, .mask))."""
    objs = np.zeros((1, len(objects)), dtype=[("class", "O"), ("class_ind", "O"), ("mask", "O"), ("parts", "O")])
    for j, (class_ind, mask, parts) in enumerate(objects):
        pa = np.zeros((1, len(parts)), dtype=[("part_name", "O"), ("mask", "O")])
        for k, (name, pm) in enumerate(parts):
            pa[0, k] = (name, pm.astype(np.uint8))
        objs[0, j] = ("person" if class_ind == PERSON else "dog", np.array([[class_ind]]), mask.astype(np.uint8),
                      pa if parts else np.zeros((0, 0)))  # fmt: skip
    anno = np.zeros((1, 1), dtype=[("imname", "O"), ("objects", "O")])
    anno[0, 0] = (path.stem, objs)
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"anno": anno})


def box(y0, y1, x0, x1):
    m = np.zeros((H, W), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def context_tree(root, ids={"train": ["2008_000001", "2008_000002", "2008_000003"], "val": ["2008_000004", "2008_000005"]}):
    for split, names in ids.items():
        (root / "ImageSets" / "Context").mkdir(parents=True, exist_ok=True)
        (root / "ImageSets" / "Context" / f"{split}.txt").write_text("\n".join(names) + "\n")
        for n, name in enumerate(names):
            jpeg(root / "JPEGImages" / f"{name}.jpg", n)
            mask = np.zeros((H, W), dtype=np.uint8)
            mask[:10] = 15
            mask[10:12] = 255
            sub = "VOC12" if n == 0 else "pascal-context"
            label_png(root / "semseg" / sub / f"{name}.png", mask, palette=(sub == "VOC12"))
            person = (PERSON, box(0, 30, 0, 20), [("head", box(0, 5, 0, 20)), ("llleg", box(25, 30, 0, 20))])
            dog = (12, box(30, 40, 30, 48), [])
            anno_mat(root / "human_parts" / f"{name}.mat", [person, dog] if n != 1 else [dog])
    return root


def voc_tree(root):
    base = root / "VOCdevkit" / "VOC2012"
    for split, names in {"train": ["2007_000032", "2007_000039", "2007_000063"], "val": ["2007_000033", "2007_000042"]}.items():
        (base / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
        (base / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(names) + "\n")
        for n, name in enumerate(names):
            jpeg(base / "JPEGImages" / f"{name}.jpg", n)
            mask = np.full((H, W), 1, dtype=np.uint8)
            mask[:, :4] = 255
            label_png(base / "SegmentationClass" / f"{name}.png", mask, palette=True)
    return root


def suite(name, root, tmp_path, **sizes):
    tf, _ = simple_transforms(32, (0.5,) * 3, (0.5,) * 3)
    opts = SuiteOptions(data_root=root, train_transform=tf, eval_transform=tf, sizes={**TINY, **sizes},
                        cache_dir=tmp_path / "cache", workers=1, progress=False)  # fmt: skip
    return build_suite(name, opts)


def test_pascal_context_semseg(tmp_path):
    s = suite("pascal-context", context_tree(tmp_path / "PASCAL_MT"), tmp_path)
    assert s.task == "segmentation" and s.num_classes == 21 and s.classnames[15] == "person"
    assert (len(s.train), len(s.selection)) == (2, 1)  # 1 of 3 train images held out, never val
    assert [e.name for e in s.evals] == ["pascal-context", "fog@1"] and all(e.metric == "miou" for e in s.evals)
    x, y = s.evals[0].dataset[0]
    assert x.shape == (3, 32, 32) and y.shape == (32, 32)
    assert set(y.unique().tolist()) == {0, 15, LOSS_IGNORE}
    xo, yo = s.evals[1].dataset[0]
    assert torch_equal(yo, y) and not torch_equal(xo, x)  # image corrupted, mask not


def torch_equal(a, b):
    import torch

    return torch.equal(a, b)


def test_pascal_parts_keeps_person_images_and_groups_parts(tmp_path):
    root = context_tree(tmp_path / "PASCAL_MT")
    target = read_human_parts(root / "human_parts" / "2008_000001.mat")
    assert target[2, 5] == 1 and target[27, 5] == 6 and target[15, 5] == 0 and target[35, 40] == 0
    s = suite("pascal-parts", root, tmp_path)
    assert s.num_classes == 7
    assert len(s.train) + len(s.selection) == 2 and len(s.evals[0].dataset) == 1  # dog-only image dropped
    # a person without part annotations is all-ignore
    anno_mat(root / "human_parts" / "2008_000001.mat", [(PERSON, box(0, 30, 0, 20), [])])
    assert (read_human_parts(root / "human_parts" / "2008_000001.mat") == IGNORE).all()


def test_pascal_voc_via_torchvision_layout(tmp_path):
    s = suite("pascal-voc", voc_tree(tmp_path), tmp_path)
    assert s.num_classes == 21 and len(s.evals[0].dataset) == 2
    _, y = s.train[0]
    assert set(y.unique().tolist()) == {1, LOSS_IGNORE}


def test_missing_directory_is_one_line_error(tmp_path):
    with pytest.raises(BenchmarkError, match="PASCAL-Context .multi-task. not found"):
        suite("pascal-context", tmp_path / "nowhere", tmp_path)
    with pytest.raises(BenchmarkError, match="PASCAL VOC 2012 not found"):
        suite("pascal-voc", tmp_path / "nowhere", tmp_path)
    report = prepare_context(tmp_path / "nowhere")
    assert not report.ok and "PASCAL_MT.tgz" in report.text


def test_missing_mask_is_one_line_error(tmp_path):
    root = context_tree(tmp_path / "PASCAL_MT")
    (root / "semseg" / "pascal-context" / "2008_000005.png").unlink()
    with pytest.raises(BenchmarkError, match="no semseg mask for image 2008_000005"):
        suite("pascal-context", root, tmp_path)
    (root / "human_parts" / "2008_000002.mat").unlink()
    with pytest.raises(BenchmarkError, match="no human-part annotation for image 2008_000002"):
        suite("pascal-parts", root, tmp_path)
    voc = voc_tree(tmp_path / "v")
    (voc / "VOCdevkit" / "VOC2012" / "SegmentationClass" / "2007_000042.png").unlink()
    with pytest.raises(BenchmarkError, match="mask.s. missing"):
        suite("pascal-voc", voc, tmp_path)


def test_wrong_label_range_is_one_line_error(tmp_path):
    root = context_tree(tmp_path / "PASCAL_MT")
    label_png(root / "semseg" / "pascal-context" / "2008_000005.png", np.full((H, W), 40, dtype=np.uint8))
    s = suite("pascal-context", root, tmp_path)
    with pytest.raises(BenchmarkError, match="label 40 out of range"):
        s.evals[0].dataset[1]


def test_prepare_verifies_counts_against_the_card(tmp_path):
    from benchmark.data.pascal import prepare_voc

    report = prepare_context(context_tree(tmp_path / "PASCAL_MT"))
    assert not report.ok and "BAD train: 3 images with masks (expected 4998)" in report.text
    report = prepare_voc(voc_tree(tmp_path / "v"))
    assert not report.ok and "BAD val: 2 images with masks (expected 1449)" in report.text


def test_counts_and_places_come_from_the_cards(tmp_path, monkeypatch):
    counts = cards.card("pascal-context")["counts"]
    monkeypatch.setitem(counts, "train", 3)
    monkeypatch.setitem(counts, "val", 2)
    report = prepare_context(context_tree(tmp_path / "PASCAL_MT"))
    assert report.ok and "ok  train: 3 images with masks (expected 3)" in report.text
    monkeypatch.setitem(cards.card("pascal-voc")["location"], "env", "OODBENCH_TEST_VOC")
    monkeypatch.setenv("OODBENCH_TEST_VOC", str(voc_tree(tmp_path / "v") / "VOCdevkit"))  # VOCdevkit itself also works
    assert suite("pascal-voc", None, tmp_path).num_classes == 21


@pytest.mark.parametrize("name, tree", [("pascal-context", lambda p: context_tree(p / "PASCAL_MT")), ("pascal-voc", voc_tree)])
def test_end_to_end_run_on_fixture_records_miou(name, tree, tmp_path, capsys):
    from benchmark.__main__ import main
    from benchmark.report.records import load_records

    root = tree(tmp_path)
    argv = ["run", "--suite", name, "--method", "ft", "tpgm", "--backbone", "seg-lite0", "--image-size", "32",
            "--epochs", "1", "--data-root", str(root), "--results", str(tmp_path / "results"), "--no-progress",
            "--workers", "1", "--size", "corruptions=('fog',)", "severities=(1,)", "selection_fraction=0.34"]  # fmt: skip
    assert main(argv) == 0
    recs = load_records(tmp_path / "results", name)
    assert sorted(r["config"]["method"] for r in recs) == ["ft", "tpgm"]
    rows = {(r["eval"], r["metric"]) for r in recs[0]["evals"]}
    assert {(name, "miou"), ("fog@1", "miou"), (name, "pixel_acc"), ("selection", "miou")} <= rows
    assert "mIoU (%)" in (tmp_path / "results" / f"{name}.md").read_text()
