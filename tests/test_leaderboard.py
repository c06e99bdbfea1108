"""Leaderboard regeneration from records, against a golden file; selection vs oracle picks by hand."""
from pathlib import Path

import pytest

from benchmark.report import leaderboard, records

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
    md_path, text = leaderboard.write(tmp_path, "toy")
    assert text == GOLDEN.read_text()
    assert md_path.read_text() == text
    assert (tmp_path / "toy.csv").read_text().count("\n") == 1 + 3 + 4  # header, 3 variants, 2 methods x 2 picks


def test_imagenet_c_leaderboard_carries_mce_against_alexnet():
    from benchmark.corruption.corruptions import CORRUPTIONS, SEVERITIES
    from benchmark.report.mce import baselines

    acc = 0.6  # every corruption and severity: CE_c = 100 * (1 - acc) / alexnet_c
    ood = {f"{c}@{s}": acc for c in CORRUPTIONS for s in SEVERITIES}
    rec = record("ft", 0, {"ft": (0.7, 0.75, ood)})
    rec["config"]["suite"] = "imagenet-c"
    rec["suite_notes"] = {"mce_baseline": "alexnet"}  # as the imagenet-c suite notes it
    alexnet = baselines()["alexnet"]["error"]
    expected = sum(100 * (1 - acc) / alexnet[c] for c in CORRUPTIONS) / len(CORRUPTIONS)
    text, _ = leaderboard.render("imagenet-c", [rec])
    assert "## mCE vs alexnet" in text
    assert f"| ft | lite0 | ft | 1 | {expected:.1f} |" in text
    assert "mCE" not in leaderboard.render("toy", RECORDS)[0]
