"""The `digits` suite (the embedded default), its renderer, its backbone digitnet and `benchmark pretrain`."""
import numpy as np
import pytest
import torch

from benchmark.data import SuiteOptions, build_suite, digits, glyphs
from benchmark.errors import BenchmarkError
from benchmark.harness import pretrain
from benchmark.models import backbone_transforms, create_backbone, digitnet

SMALL = {"n_train": 60, "n_selection": 20, "n_test": 30, "n_fonts": 20}


def small_suite(**sizes):
    train, evaluate = backbone_transforms("digitnet", 32)
    return build_suite("digits", SuiteOptions(None, train, evaluate, sizes={**SMALL, **sizes}, progress=False))


def test_handwritten_digits_are_sklearns_1797_real_images():
    images, labels = digits.load()
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8 and images.max() == 255
    assert np.bincount(labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_suite_protocol_splits_are_disjoint_and_ood_sets_are_named():
    suite = small_suite()
    assert suite.classnames == [str(d) for d in range(10)]
    assert len(suite.train) == 60 and len(suite.selection) == 20
    roles = {e.name: (e.role, len(e.dataset)) for e in suite.evals}
    assert roles == {"handwritten": ("id", 30), "fonts": ("ood", 20), "fonts-styled": ("ood", 20),
                     "inverted": ("ood", 30), "coloured": ("ood", 30), "textured": ("ood", 30)}  # fmt: skip
    # The split is of distinct scikit-learn rows: train, selection and test never share a row.
    images, _ = digits.load()
    rows = {bytes(r): i for i, r in enumerate(images.reshape(len(images), -1))}
    ids = {name: {rows[bytes(r)] for r in digits_of(ds)} for name, ds in
           (("train", suite.train), ("selection", suite.selection), ("test", suite.evals[0].dataset))}  # fmt: skip
    assert not ids["train"] & ids["selection"] and not ids["train"] & ids["test"] and not ids["selection"] & ids["test"]
    # The restyled sets redraw the ID test digits: same labels, other pixels.
    test, inverted = suite.evals[0].dataset, suite.evals[3].dataset
    assert (test.labels == inverted.labels).all() and test.images.mean() < 100 < inverted.images.mean()
    assert small_suite().fingerprint == suite.fingerprint  # rendering is deterministic


def digits_of(dataset):
    """The 8x8 rows behind enlarged images (the enlargement is invertible by box-averaging 4x4 blocks of the
    grey image only approximately, so match by re-enlarging every row instead)."""
    images, _ = digits.load()
    enlarged = digits.enlarge(images, 32)
    index = {bytes(e): images[i] for i, e in enumerate(enlarged)}
    return [index[bytes(x)] for x in dataset.images]


def test_sizes_beyond_the_data_are_one_line_errors():
    with pytest.raises(BenchmarkError, match="exceed the data"):
        small_suite(n_train=1790)


def test_missing_sklearn_file_is_one_line(monkeypatch, tmp_path):
    import sklearn

    monkeypatch.setattr(sklearn, "__file__", str(tmp_path / "sklearn" / "__init__.py"))
    with pytest.raises(BenchmarkError, match="reinstall scikit-learn"):
        digits.load()


def test_render_is_seeded_balanced_and_styled():
    fonts = glyphs.matplotlib_fonts()[:3]
    a, labels = glyphs.render(fonts, 20, 5, glyphs.HELD_OUT_TEXTURES)
    b, _ = glyphs.render(fonts, 20, 5, glyphs.HELD_OUT_TEXTURES)
    assert a.shape == (20, 32, 32, 3) and a.dtype == np.uint8 and (a == b).all()
    assert np.bincount(labels).tolist() == [2] * 10
    dark = glyphs.render(fonts, 10, 1, (), glyphs.RenderOptions(styles=("light-on-dark",), low_res=0, blur=0, noise=0))[0]
    light = glyphs.render(fonts, 10, 1, (), glyphs.RenderOptions(styles=("dark-on-light",), low_res=0, blur=0, noise=0))[0]
    assert dark.mean() < 90 < 160 < light.mean()


def test_a_font_without_digits_is_not_usable(tmp_path):
    bad = tmp_path / "bad.ttf"
    bad.write_bytes(b"not a font")
    assert not glyphs.usable(str(bad))
    assert glyphs.font_files([tmp_path]) == []


def test_digitnet_ships_checked_weights_and_its_head_is_the_zero_shot_head():
    built = create_backbone("digitnet", digitnet.CLASSES, 32)
    assert built.head_is_pretrained and digitnet.sha256(digitnet.SHIPPED) == digitnet.SHIPPED_SHA256
    assert sum(p.numel() for p in built.model.parameters()) == 162_994
    other = create_backbone("digitnet", ("a", "b"), 32)
    assert not other.head_is_pretrained and other.model.head.out_features == 2
    assert other.pretraining_head.out_features == 10 and built.pretraining_head is None  # FSR's function space
    assert torch.equal(other.model.backbone[0].weight, built.model.backbone[0].weight)  # same pretrained features


def test_damaged_or_foreign_weights_are_one_line_errors(tmp_path, monkeypatch):
    damaged = tmp_path / "digitnet.pt"
    damaged.write_bytes(digitnet.SHIPPED.read_bytes()[:-10])
    monkeypatch.setattr(digitnet, "SHIPPED", damaged)
    with pytest.raises(BenchmarkError, match="damaged"):
        create_backbone("digitnet", digitnet.CLASSES, 32)
    foreign = tmp_path / "foreign.pt"
    torch.save(digitnet.digitnet(width=8).state_dict(), foreign)
    with pytest.raises(BenchmarkError, match="do not fit"):
        create_backbone(f"digitnet:{foreign}", digitnet.CLASSES, 32)
    with pytest.raises(BenchmarkError, match="not found"):
        create_backbone(f"digitnet:{tmp_path / 'none.pt'}", digitnet.CLASSES, 32)


def test_pretraining_at_tiny_size_is_deterministic_and_loads(tmp_path):
    fonts = glyphs.matplotlib_fonts()[:4]
    recipe = pretrain.recipe({"n_train": 40, "n_val": 20, "epochs": 1, "batch_size": 16})
    first = pretrain.pretrain(tmp_path / "a.pt", recipe, fonts, progress=lambda _: None)
    pretrain.pretrain(tmp_path / "b.pt", recipe, fonts, progress=lambda _: None)
    assert "sha256" in first and "differs from" in first
    assert digitnet.sha256(tmp_path / "a.pt") == digitnet.sha256(tmp_path / "b.pt")
    built = create_backbone(f"digitnet:{tmp_path / 'a.pt'}", digitnet.CLASSES, 32)
    assert built.head_is_pretrained
    with pytest.raises(BenchmarkError, match="exists"):
        pretrain.pretrain(tmp_path / "a.pt", recipe, fonts)


def test_pretraining_refuses_missing_fonts_and_bad_options(tmp_path):
    with pytest.raises(BenchmarkError, match="apt-get install fonts-"):
        pretrain.pretraining_fonts(roots=(str(tmp_path),))
    with pytest.raises(BenchmarkError, match="unknown pretraining option"):
        pretrain.recipe({"width": 3})
    with pytest.raises(BenchmarkError, match="must be > 0"):
        pretrain.recipe({"epochs": 0})


TINY = ["--suite", "digits", "--method", "zeroshot", "lp", "--seed", "0", "--no-progress", "--workers", "0",
        "--size", "n_train=40", "n_selection=20", "n_test=30", "n_fonts=20"]  # fmt: skip


def test_recorded_runs_are_skipped_without_data_work_and_say_where_numbers_come_from(tmp_path, monkeypatch, capsys):
    from benchmark.__main__ import main
    from benchmark.harness import run

    assert main(["run", *TINY, "--results", str(tmp_path)]) == 0
    first = capsys.readouterr().out
    assert "Every run was recorded before" not in first and "lp " in first and "full table:" in first
    records = {p: p.read_bytes() for p in (tmp_path / "runs" / "digits").glob("*.json")}

    def no_build(*args, **kwargs):
        raise AssertionError("a skipped run built its suite")

    monkeypatch.setattr(run, "prepare_suite", no_build)
    assert main(["run", *TINY, "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("exists, skipped") == 2 and "Every run was recorded before" in out and "--rerun" in out
    assert "zeroshot" in out and f"full table: {tmp_path / 'digits.md'}" in out
    assert len(records) == 2 and all(p.read_bytes() == kept for p, kept in records.items())  # nothing rewritten
    # Another copy of the source file: the suite is built (and its fingerprint checked) again.
    monkeypatch.setattr(run, "sources_fingerprint", lambda cfg, root: "another copy")
    with pytest.raises(AssertionError, match="built its suite"):
        main(["run", *TINY, "--results", str(tmp_path)])
