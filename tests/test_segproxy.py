"""The embedded segmentation proxy: exact masks, disjoint splits, and a tiny end-to-end run scored by mIoU."""
import numpy as np
import pytest
from torch import nn

from benchmark.report import records
from benchmark.__main__ import main
from benchmark.data import cards, fmnist, segproxy
from benchmark.errors import BenchmarkError
from methods.lp import probe_head

TINY = ["n_train=24", "n_selection=8", "n_val=8", "n_ood=4", "size=32", "severities=(3,)", "corruptions=('fog','contrast')"]


def test_composite_masks_are_exact_and_bands_disjoint():
    garments = np.zeros((3, 28, 28), dtype=np.uint8)
    garments[:, 4:24, 8:20] = 200  # a bright rectangle: every upscaled pixel above threshold is garment
    photos = [np.full((segproxy.PHOTO_SIDE, segproxy.PHOTO_SIDE, 3), 7, dtype=np.uint8)]
    images, masks = segproxy.composite(garments, np.array([0, 4, 9]), photos, segproxy.BANDS["val"], 32, seed=0)
    assert set(np.unique(masks[1])) == {0, 5} and set(np.unique(masks[2])) == {0, 10}
    assert (images[masks == 0] == 7).all()  # background pixels are the photo, untouched
    assert (images[masks > 0] != 7).any(axis=-1).all()  # garment pixels are painted
    bands = sorted(segproxy.BANDS.values())
    assert all(a[1] <= b[0] for a, b in zip(bands, bands[1:]))
    assert all(hi - lo >= segproxy.CROP[1] for lo, hi in bands)


def test_card_lists_the_proxys_classes_and_photos():
    import skimage.data

    card = cards.card("segproxy")
    assert card["classes"] == ["background", *fmnist.classnames()]  # label 1 + Fashion-MNIST class
    assert segproxy.photo_names() == tuple(card["backgrounds"])
    assert all(callable(getattr(skimage.data, name, None)) for name in card["backgrounds"])


def test_tiny_run_scores_miou_per_corruption_and_leaderboard_shows_it(tmp_path, capsys):
    args = ["run", "--suite", "segproxy", "--method", "ft", "--epochs", "1", "--results", str(tmp_path),
            "--no-progress", "--workers", "1", "--set", "batch_size=8", "--size", *TINY]  # fmt: skip
    assert main(args) == 0
    (path,) = (tmp_path / "runs" / "segproxy").glob("*.json")
    rec = records.read_record(path)
    miou = {r["eval"]: r for r in rec["evals"] if r["metric"] == "miou"}
    assert set(miou) == {"selection", "segproxy", "fog@3", "contrast@3"}
    assert {r["eval"] for r in rec["evals"] if r["metric"] == "pixel_acc"} == set(miou)
    assert all(0.0 <= r["value"] <= 1.0 and len(r["per_class"]) == 11 for r in miou.values())
    assert miou["fog@3"]["group"] == "fog" and miou["fog@3"]["n"] == 4
    table = (tmp_path / "segproxy.md").read_text()
    assert table.splitlines()[2].startswith("mIoU (%)") and "| ft | seg-lite0 | selected | ft |" in table
    capsys.readouterr()
    assert main(["run", "--suite", "segproxy", "--method", "lp", "--results", str(tmp_path), "--size", *TINY]) == 2
    assert "lp supports classification suites only; segproxy is a segmentation suite" in capsys.readouterr().err


def test_probe_based_methods_refuse_a_decoder_head_in_one_line():
    model = nn.Module()
    model.head = nn.Sequential(nn.Conv2d(4, 3, 1))
    with pytest.raises(BenchmarkError, match="linear probe needs a linear head; this model's head is a Sequential"):
        probe_head(model, None, 1e-4)
