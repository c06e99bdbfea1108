"""Figures regenerated from records: the plotted data (never pixels) by hand, file names, byte determinism."""
import json
from dataclasses import dataclass

import numpy as np
import pytest

from benchmark.report import figures, records


def record(suite, method, seed, variants):
    """variants: {name: (selection, id, {eval: value})} -> a finished record shaped like results/runs/fmnist-c/."""
    rows = []
    for variant, (sel, id_, ood) in variants.items():
        rows.append({"variant": variant, "eval": "selection", "role": "selection", "group": "selection", "metric": "acc", "value": sel, "n": 10})
        rows.append({"variant": variant, "eval": "clean", "role": "id", "group": "clean", "metric": "acc", "value": id_, "n": 10})
        for name, value in ood.items():
            rows.append({"variant": variant, "eval": name, "role": "ood", "group": name.split("@")[0], "metric": "acc", "value": value, "n": 5})
    config = {"suite": suite, "method": method, "backbone": "lite0", "seed": seed, "image_size": 32, "hparams": {},
              "sizes": {}, "pretrained": True}  # fmt: skip
    return {"run_id": f"{method}-{seed}", "config": config, "departures": {}, "evals": rows, "seed": seed}


def corrupted(fog1, fog3, blur1, blur3):
    return {"fog@1": fog1, "fog@3": fog3, "blur@1": blur1, "blur@3": blur3}


TOY = [
    record("toy-c", "ft", 0, {"ft": (0.80, 0.90, corrupted(0.5, 0.3, 0.6, 0.4))}),
    record("toy-c", "ft", 1, {"ft": (0.70, 0.80, corrupted(0.4, 0.2, 0.4, 0.2))}),
    record("toy-c", "lp", 0, {"lp": (0.60, 0.70, corrupted(0.6, 0.5, 0.6, 0.5))}),
    record("toy-c", "lp", 1, {"lp": (0.62, 0.72, corrupted(0.6, 0.5, 0.6, 0.5))}),
    # Variants out of α order; selection prefers α=1, OOD prefers α=0.5: selected and oracle differ.
    *[record("toy-c", "wise-ft", seed, {
        "wise-ft@1": (0.85, 0.88, corrupted(0.5, 0.3, 0.5, 0.3)),
        "wise-ft@0": (0.60, 0.70, corrupted(0.6, 0.5, 0.6, 0.5)),
        "wise-ft@0.5": (0.75, 0.82, corrupted(0.7, 0.6, 0.7, 0.6)),
    }) for seed in (0, 1)],
    record("toy-c", "soup", 0, {
        "soup-ingredient-1": (0.70, 0.80, corrupted(0.4, 0.3, 0.4, 0.3)),
        "soup-ingredient-0": (0.72, 0.84, corrupted(0.5, 0.4, 0.5, 0.4)),
        "soup-uniform": (0.74, 0.83, corrupted(0.5, 0.4, 0.5, 0.4)),
        "soup-greedy": (0.78, 0.86, corrupted(0.6, 0.4, 0.6, 0.4)),
    }),
]  # fmt: skip


@dataclass(frozen=True)
class StubLine:
    """The interface figures use of effective.Line: predict (fractions), source, points."""

    source: str = "toy baseline fit"
    points: int = 4

    def predict(self, id_acc):
        return np.asarray(id_acc) * 0.5


def stored(tmp_path, recs):
    """Records written and read back as the leaderboard reads them, so their shape is a valid record's."""
    for r in recs:
        records.write_record(tmp_path, r)
    good, rejected = records.scan_records(tmp_path, recs[0]["config"]["suite"])
    assert not rejected
    return good


@pytest.fixture(scope="module")
def toy_data():
    return figures.figure_data("toy-c", TOY, StubLine())


def by_label(entries):
    return {e["label"]: e for e in entries}


def test_selected_point_means_and_stderrs_by_hand(toy_data):
    points = by_label(toy_data["scatter"]["points"])
    assert list(points) == ["lp", "ft", "wise-ft", "soup"]  # method order
    ft = points["ft"]
    # id: mean(0.9, 0.8) = 0.85, stderr = std([0.9, 0.8], ddof=1) / sqrt(2) = |0.9 - 0.8| / 2 = 0.05
    assert (ft["id"], ft["id_stderr"], ft["seeds"]) == (pytest.approx(0.85), pytest.approx(0.05), 2)
    # ood per seed: mean(fog (0.5+0.3)/2, blur (0.6+0.4)/2) = 0.45; seed 1: 0.3 -> mean 0.375, stderr 0.075
    assert (ft["ood"], ft["ood_stderr"]) == (pytest.approx(0.375), pytest.approx(0.075))
    assert json.loads(json.dumps(toy_data)) == toy_data  # plain JSON-able data


def test_selected_variant_is_plotted_not_the_oracle(toy_data):
    wise = by_label(toy_data["scatter"]["points"])["wise-ft"]
    assert wise["variant"] == "wise-ft@1"  # the oracle (best OOD) would be wise-ft@0.5
    assert (wise["id"], wise["ood"], wise["id_stderr"]) == (pytest.approx(0.88), pytest.approx(0.4), 0.0)


def test_alpha_path_is_ordered_by_alpha_and_marks_the_pretrained_end(toy_data):
    [path] = toy_data["scatter"]["paths"]
    assert path["label"] == "wise-ft"
    assert [p["alpha"] for p in path["points"]] == [0.0, 0.5, 1.0]
    assert [p["variant"] for p in path["points"]] == ["wise-ft@0", "wise-ft@0.5", "wise-ft@1"]
    assert path["points"][1]["ood"] == pytest.approx(0.65)
    [pretrained] = toy_data["scatter"]["pretrained"]
    assert (pretrained["variant"], pretrained["id"]) == ("wise-ft@0", pytest.approx(0.70))


def test_soup_ingredients_and_soups(toy_data):
    [soup] = toy_data["scatter"]["soups"]
    assert [p["variant"] for p in soup["ingredients"]] == ["soup-ingredient-0", "soup-ingredient-1"]
    assert {p["variant"] for p in soup["soups"]} == {"soup-uniform", "soup-greedy"}


def test_given_line_is_drawn_across_the_plotted_id_range(toy_data):
    scatter = toy_data["scatter"]
    line, (lo, hi) = scatter["line"], scatter["xlim"]
    assert line["source"] == "toy baseline fit" and line["points"] == 4
    assert (line["x"][0], line["x"][-1]) == (lo, hi)
    assert line["y"] == pytest.approx([0.5 * x for x in line["x"]], abs=1e-6)
    ids = [p["id"] for p in scatter["points"]] + [p["id"] for p in scatter["paths"][0]["points"]]
    assert lo < min(ids) and max(ids) < hi
    assert figures.figure_data("toy-c", TOY, "fewer than 2 baseline runs")["scatter"]["line"] == {"absent": "fewer than 2 baseline runs"}
    assert figures.figure_data("toy-c", TOY)["scatter"]["line"] is None


def test_heatmap_cells_by_hand(toy_data):
    heat = toy_data["heatmap"]
    assert (heat["corruptions"], heat["severities"]) == (["fog", "blur"], [1, 3])
    panels = by_label(heat["panels"])
    assert panels["ft"]["cells"] == [[0.45, 0.25], [0.5, 0.3]]  # mean over the two seeds (data rounded to 6 decimals)
    assert panels["wise-ft"]["variant"] == "wise-ft@1"
    assert panels["wise-ft"]["cells"] == [[0.5, 0.3], [0.5, 0.3]]  # the selected α, not the oracle's
    assert panels["soup"]["cells"] == [[0.6, 0.4], [0.6, 0.4]]  # soup-greedy
    assert toy_data["domains"] is None


def test_write_names_files_and_is_byte_deterministic(tmp_path):
    recs = stored(tmp_path, TOY)
    results = tmp_path / "results"
    paths, markdown, data = figures.write(results, "toy-c", recs, StubLine())
    names = ["toy-c.scatter.png", "toy-c.scatter.svg", "toy-c.heatmap.png", "toy-c.heatmap.svg"]
    assert [p.name for p in paths] == names and all(p.parent == results for p in paths)
    assert "![ID vs OOD](toy-c.scatter.png)" in markdown and "(toy-c.heatmap.png)" in markdown
    first = {p.name: p.read_bytes() for p in paths}
    again, _, data_again = figures.write(results, "toy-c", recs, StubLine())
    assert {p.name: p.read_bytes() for p in again} == first
    assert data_again == data
    assert sorted(p.name for p in results.iterdir()) == sorted(names)  # no temp files left


def test_suite_without_corruptions_gets_domain_bars(tmp_path):
    domains = {"sketch": 0.3, "painting": 0.5}
    recs = stored(tmp_path, [record("toy-dn", "ft", 0, {"ft": (0.8, 0.9, domains)}),
                             record("toy-dn", "lp", 0, {"lp": (0.7, 0.8, {"sketch": 0.4, "painting": 0.6})})])  # fmt: skip
    paths, markdown, data = figures.write(tmp_path / "results", "toy-dn", recs)
    assert data["heatmap"] is None
    assert data["domains"]["groups"] == ["id", "sketch", "painting"]
    ft = by_label(data["domains"]["bars"])["ft"]
    assert ft["values"] == pytest.approx({"id": 0.9, "sketch": 0.3, "painting": 0.5})
    assert [p.name for p in paths] == ["toy-dn.scatter.png", "toy-dn.scatter.svg", "toy-dn.domains.png", "toy-dn.domains.svg"]
    assert "(toy-dn.domains.png)" in markdown and "heatmap" not in markdown
