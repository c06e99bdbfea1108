"""Leaderboard regeneration from records, against a golden file; selection vs oracle picks by hand."""
import re
from pathlib import Path

import pytest

from benchmark.report import formats, leaderboard, records
from benchmark.report.publish import publish

GOLDEN = Path(__file__).parent / "golden" / "leaderboard_toy.md"


def record(method, seed, variants):
    """variants: {name: (selection, id, {eval: value})} -> a finished record in the long format."""
    rows = []
    for variant, (sel, id_, ood) in variants.items():
        rows.append({"variant": variant, "eval": "selection", "role": "selection", "group": "selection", "metric": "acc", "value": sel, "n": 10})
        rows.append({"variant": variant, "eval": "clean", "role": "id", "group": "clean", "metric": "acc", "value": id_, "n": 10})
        for name, value in ood.items():
            rows.append({"variant": variant, "eval": name, "role": "ood", "group": name.split("@")[0], "metric": "acc", "value": value, "n": 5})
    config = {"suite": "toy", "method": method, "backbone": "lite0", "seed": seed, "image_size": 32, "hparams": {}, "sizes": {}, "pretrained": True}
    return {"run_id": f"{method}-{seed}", "status": "done", "config": config, "evals": rows}


RECORDS = [
    record("ft", 0, {"ft": (0.80, 0.90, {"fog@1": 0.50, "fog@3": 0.30, "blur@1": 0.60})}),
    record("ft", 1, {"ft": (0.70, 0.80, {"fog@1": 0.40, "fog@3": 0.20, "blur@1": 0.40})}),
    # WiSE: selection prefers alpha 1.0, OOD prefers alpha 0.5, so selected and oracle differ.
    record("wise-ft", 0, {
        "wise-ft@0.5": (0.60, 0.70, {"fog@1": 0.70, "fog@3": 0.50, "blur@1": 0.70}),
        "wise-ft@1.0": (0.85, 0.90, {"fog@1": 0.50, "fog@3": 0.30, "blur@1": 0.60}),
    }),
]  # fmt: skip


def test_selection_and_oracle_picks_by_hand():
    _, selection, groups, metric = leaderboard.tables(RECORDS)
    assert metric == "acc"
    assert groups == ["fog", "blur"]  # suite order, not alphabetical
    rows = {(r.method, r.pick): r for r in selection.itertuples()}
    assert rows["wise-ft", "selected"].variant == "wise-ft@1.0"
    assert rows["wise-ft", "oracle"].variant == "wise-ft@0.5"
    # ood = mean over groups of (mean over severities): fog (0.7+0.5)/2 = 0.6, blur 0.7 -> 0.65
    assert rows["wise-ft", "oracle"].ood_mean == pytest.approx(0.65)
    # ft over two seeds: id mean 0.85, stderr = std([0.9, 0.8], ddof=1) / sqrt(2) = 0.05
    assert rows["ft", "selected"].id_mean == pytest.approx(0.85)
    assert rows["ft", "selected"].id_stderr == pytest.approx(0.05)
    assert rows["ft", "selected"].seeds == 2


def test_regenerated_table_matches_golden(tmp_path):
    for r in RECORDS:
        records.write_record(tmp_path, r)
    paths, text, _ = publish(tmp_path, "toy", ("md", "csv"))
    assert text.replace(str(tmp_path), "results") == GOLDEN.read_text()  # the footer names the records' folder
    assert paths[0] == tmp_path / "toy.md" and paths[0].read_text() == text
    assert (tmp_path / "toy.csv").read_text().count("\n") == 1 + 3 + 4  # header, 3 variants, 2 methods x 2 picks


def imagenet_c_record(method, seed, acc=0.6, drop=(), sizes=None, notes=None):
    """An imagenet-c record scoring `acc` on every corruption and severity but those in `drop`."""
    from benchmark.corruption.corruptions import CORRUPTIONS, SEVERITIES

    ood = {f"{c}@{s}": acc for c in CORRUPTIONS for s in SEVERITIES if f"{c}@{s}" not in drop}
    rec = record(method, seed, {method: (0.7, 0.75, ood)})
    rec["config"]["suite"] = "imagenet-c"
    rec["config"]["sizes"] = sizes or {}
    rec["suite_notes"] = {"mce_baseline": "alexnet", **(notes or {})}  # as the imagenet-c suite notes it
    return rec


def test_imagenet_c_leaderboard_carries_mce_against_alexnet():
    from benchmark.corruption.corruptions import CORRUPTIONS
    from benchmark.report.mce import baselines

    acc = 0.6  # every corruption and severity: CE_c = 100 * (1 - acc) / alexnet_c
    alexnet = baselines()["alexnet"]["error"]
    expected = sum(100 * (1 - acc) / alexnet[c] for c in CORRUPTIONS) / len(CORRUPTIONS)
    text, _ = leaderboard.render("imagenet-c", [imagenet_c_record("ft", 0, acc)])
    assert "## mCE vs alexnet" in text
    assert f"| ft | lite0 | ft | 1 | {expected:.1f} |" in text
    assert "mCE" not in leaderboard.render("toy", RECORDS)[0]


def test_a_missing_cell_marks_its_row_incomplete_and_the_rest_still_show():
    recs = [imagenet_c_record("ft", 0), imagenet_c_record("lp", 0, drop={"fog@4"}),
            imagenet_c_record("l2-sp", 0), imagenet_c_record("l2-sp", 1, drop={"snow@1", "fog@2"})]  # fmt: skip
    text, _ = leaderboard.render("imagenet-c", recs)
    assert "| lp | lite0 | lp | 1 | incomplete: 74 of 75 cells (missing fog@4) |" in text
    # over seeds: a cell missing from any seed is missing from the row
    assert "| l2-sp | lite0 | l2-sp | 2 | incomplete: 73 of 75 cells (missing snow@1, fog@2) |" in text
    assert re.search(r"^\| ft \| lite0 \| ft \| 1 \| \d+\.\d \|$", text, re.M)


def test_mce_of_a_class_subset_is_not_shown():
    """A k-class run's errors do not compare with AlexNet's 1000-class ones: no number, and the reason."""
    wnids = ["n01440764", "n01443537"]
    recs = [imagenet_c_record("ft", 0), imagenet_c_record("lp", 0, sizes={"wnids": ",".join(wnids)}, notes={"wnids": wnids})]
    text, _ = leaderboard.render("imagenet-c", recs)
    assert "| lp | lite0 | lp | 1 | not shown: a 2-class subset; the alexnet errors are over all 1000 classes |" in text
    html = formats.page(leaderboard.board("imagenet-c", recs))
    assert "<h2>mCE vs alexnet (%, lower is better)</h2>" in html and "not shown: a 2-class subset" in html


def test_a_method_run_several_ways_is_labelled_by_what_differs():
    sweep = [record("ft", 0, {"ft": (0.8, 0.9, {"fog@1": 0.5})}), record("ft", 1, {"ft": (0.7, 0.8, {"fog@1": 0.4})}),
             record("ft", 0, {"ft": (0.6, 0.7, {"fog@1": 0.3})}), record("wise-ft", 0, {"wise-ft@1.0": (0.6, 0.7, {"fog@1": 0.3})})]
    sweep[2]["config"]["hparams"] = {"lr": 0.01}
    sweep[2]["run_id"] = "ft-lr"
    assert leaderboard.settings_of(sweep) == {"ft-0": "lr=(none)", "ft-1": "lr=(none)", "ft-lr": "lr=0.01", "wise-ft-0": ""}
    text, _ = leaderboard.render("toy", sweep)
    assert "| ft (lr=0.01) | lite0 | ft | 1 | 60.0 | 70.0 | 30.0 |" in text
    assert "| ft (lr=(none)) | lite0 | ft | 2 |" in text and "| wise-ft | lite0 | wise-ft@1.0 | 1 |" in text  # seeds: one setting
