"""Paper tables: published numbers beside ours, ours computed from records only."""
import math

import pytest

from benchmark.report import effective, records, reproduce
from benchmark.__main__ import main

IMAGENET_BASE = {"imagenet": 0.8, "imagenet-v2": 0.7, "imagenet-a": 0.4, "imagenet-r": 0.6, "imagenet-sketch": 0.5,
                 "objectnet": 0.3}  # fmt: skip


def imagenet_record(method, variant, seed, scores, backbone="clip:ViT-B-16/openai"):
    """A toy record of the imagenet suite; eval names (= groups) as the suite names them."""
    rows = [{"variant": variant, "eval": "selection", "role": "selection", "group": "selection", "metric": "acc", "value": 0.5, "n": 4}]
    for name, value in scores.items():
        role = "id" if name == "imagenet" else "ood"
        rows.append({"variant": variant, "eval": name, "role": role, "group": name, "metric": "acc", "value": value, "n": 4})
    config = {"suite": "imagenet", "method": method, "backbone": backbone, "seed": seed,
              "image_size": 224, "hparams": {}, "sizes": {}, "pretrained": True}  # fmt: skip
    return {"run_id": f"{method}-{seed}", "status": "done", "config": config, "evals": rows}


def segmentation_record(suite, method, variant, seed, clean, fog_by_severity):
    """A toy record of a pascal suite: mIoU (and pixel accuracy, which tables do not show) per eval set."""
    rows = []
    for name, role, group, value in [("selection", "selection", "selection", 0.5), (suite, "id", suite, clean),
                                     *((f"fog@{s}", "ood", "fog", v) for s, v in fog_by_severity.items())]:
        rows += [{"variant": variant, "eval": name, "role": role, "group": group, "metric": "miou", "value": value, "n": 4},
                 {"variant": variant, "eval": name, "role": role, "group": group, "metric": "pixel_acc", "value": 0.99, "n": 4}]
    config = {"suite": suite, "method": method, "backbone": "deeplab:resnet18", "seed": seed, "image_size": 512,
              "hparams": {}, "sizes": {}, "pretrained": True}  # fmt: skip
    return {"run_id": f"{method}-{seed}", "status": "done", "config": config, "evals": rows}


def test_ours_is_the_seed_mean_of_the_mapped_variant(tmp_path):
    records.write_record(tmp_path, imagenet_record("ft", "ft", 0, IMAGENET_BASE))
    records.write_record(tmp_path, imagenet_record("ft", "ft", 1, {**IMAGENET_BASE, "imagenet": 0.9}))
    text = reproduce.render("tpgm-imagenet", tmp_path)
    assert "| ft | published | 84.27 | 74.78 | 45.54 | 65.05 | 48.28 |  |" in text
    line = effective.testbed_lines()["ood"]
    er = sum(0.5 - effective.sigmoid(line.slope * effective.logit(i) + line.intercept) for i in (0.8, 0.9)) / 2
    assert f"| ft | ours (2 seeds) | 85.00 | 70.00 | 40.00 | 60.00 | 50.00 | {100 * er:.2f} |" in text  # ood: 5 shifts
    assert "| ft | ours − published | +0.73 | -4.78 | -5.54 | -5.05 | +1.72 |  |" in text
    assert "| tpgm | ours | not run (clip:ViT-B-16/openai, tpgm, variant tpgm-posthoc) |" in text
    assert "| row | source | imagenet | imagenet-v2 | imagenet-a | imagenet-r | imagenet-sketch | eff. robustness |" in text


def test_pascal_tables_compare_mIoU_with_fog_as_the_mean_over_severities(tmp_path):
    fog = {1: 0.64, 2: 0.62, 3: 0.60, 4: 0.58, 5: 0.56}  # mean 0.60
    records.write_record(tmp_path, segmentation_record("pascal-parts", "tpgm", "tpgm", 0, 0.65, fog))
    text = reproduce.render("tpgm-pascal-parts", tmp_path)
    assert "| tpgm | published | 63.29 | 60.16 |  |" in text
    assert "| tpgm | ours (1 seed) | 65.00 | 60.00 | – |" in text  # no lp/ft runs: no line to measure from
    assert "eff. robustness: not computed: 0 points (no lp, ft runs)" in text
    assert "| tpgm | ours − published | +1.71 | -0.16 |  |" in text
    assert "which fog severity the published number uses (unknown here)" in text
    semseg = reproduce.render("tpgm-pascal-semseg", tmp_path)  # another suite: its own records only
    assert "| tpgm | ours | not run (deeplab:resnet18, tpgm, variant tpgm) |" in semseg


def test_fractions_as_printed_are_shown_in_percent_and_blanks_stay_blank(tmp_path):
    zs = {"imagenet": 0.70, "imagenet-v2": 0.62, "imagenet-r": 0.76, "imagenet-sketch": 0.47, "objectnet": 0.55,
          "imagenet-a": 0.50}  # fmt: skip
    records.write_record(tmp_path, imagenet_record("zeroshot", "zeroshot", 0, zs))
    text = reproduce.render("lipsum-ft-imagenet", tmp_path)
    assert "| zero-shot | published | 68.17 | 61.98 | 76.35 | 46.66 | – | 52.00 | – |  |" in text
    line = effective.testbed_lines()["ood"]
    er = 0.58 - effective.sigmoid(line.slope * effective.logit(0.70) + line.intercept)  # ood_avg 58 at ID 70
    assert f"| zero-shot | ours (1 seed) | 70.00 | 62.00 | 76.00 | 47.00 | 55.00 | 50.00 | 58.00 | {100 * er:.2f} |" in text
    assert "the line: Taori et al. 2020 testbed, 80 standard ImageNet models" in text
    assert "| zero-shot | ours − published | +1.83 | +0.02 | -0.35 | +0.34 | – | -2.00 | – |  |" in text
    assert "| lipsum-ft | published | 83.32 | 73.56 | 75.86 | 51.48 | – | 49.87 | – |  |" in text


def test_the_footer_names_the_results_folder_read(tmp_path):
    text = reproduce.render("tpgm-domainnet", tmp_path / "elsewhere")
    assert f"Ours: suite `domainnet`, from {tmp_path / 'elsewhere' / 'runs' / 'domainnet'}/." in text
    assert f"Generated by `benchmark reproduce` from the records in {tmp_path / 'elsewhere' / 'runs' / 'domainnet'}/; do not edit." in text


def test_cli_writes_every_table_and_rejects_unknown(tmp_path, capsys):
    assert main(["reproduce", "--results", str(tmp_path)]) == 0
    assert sorted(p.name for p in (tmp_path / "reproduce").iterdir()) == sorted(f"{t}.md" for t in reproduce.TABLES)
    assert main(["reproduce", "nope", "--results", str(tmp_path)]) == 2
    assert "unknown table 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("name", list(reproduce.TABLES))
def test_every_spec_column_exists_in_its_reference_csv(name):
    spec = reproduce.TABLES[name]
    _, published = reproduce.read_reference(spec)
    assert set(spec.columns) <= set(published.columns)
    assert {tuple(r[c] for c in spec.key_columns) for _, r in published.iterrows()} == set(spec.rows)
    for _, row in published.iterrows():  # every cell is a number or blank, in % once read
        values = [reproduce.published_value(spec, row[c]) for c in spec.columns]
        assert all(0 <= v <= 100 for v in values if not math.isnan(v))


@pytest.mark.parametrize("name, cited, first", [
    ("tpgm-pascal-semseg", "TPGM (Tian et al., CVPR 2023) PASCAL-Context semantic segmentation row, as listed in seed 004_231a12184ee91d43.txt",
     {"clean": "72.56", "fog": "69.51"}),
    ("tpgm-pascal-parts", "TPGM (Tian et al., CVPR 2023) PASCAL human parts row, as listed in seed 004_231a12184ee91d43.txt",
     {"clean": "63.29", "fog": "60.16"}),
    ("lipsum-ft-imagenet", "Lipsum-FT official README (github.com/cs-giung/lipsum-ft, README.md at commit 4a5cdbd58299fd61fad2e19dbd7124dc88778969",
     {"method": "zero-shot", "imagenet": "6.817e-01", "imagenet-a": "5.200e-01", "objectnet": ""}),
])  # fmt: skip
def test_new_tables_read_their_csv_with_the_cited_source(name, cited, first):
    source, published = reproduce.read_reference(reproduce.TABLES[name])
    assert source.startswith(cited)
    assert {k: published.iloc[0][k] for k in first} == first


def test_ours_shows_budget_departures_and_mixed_code(tmp_path):
    ft = {**imagenet_record("ft", "ft", 0, IMAGENET_BASE), "code": {"source_sha256": "a" * 16, "commit": None, "dirty": None}}
    short = {"epochs": {"value": 1, "suite": 10, "source": "command line"}}
    zs = {**imagenet_record("zeroshot", "zeroshot", 0, IMAGENET_BASE), "departures": short,
          "code": {"source_sha256": "b" * 16, "commit": None, "dirty": None}}
    for r in (ft, zs):
        records.write_record(tmp_path, r)
    text = reproduce.render("tpgm-imagenet", tmp_path)
    assert "| zero-shot | ours (1 seed) [budget: epochs 1 (suite 10)] |" in text
    assert "| ft | ours (1 seed) |" in text
    assert "**Mixed code**: these records come from 2 versions of the code" in text
