"""Paper tables: published numbers beside ours, ours computed from records only."""
import pytest

from benchmark.report import records, reproduce
from benchmark.__main__ import main


def imagenet_record(method, variant, seed, scores):
    rows = [{"variant": variant, "eval": "selection", "role": "selection", "group": "selection", "metric": "acc", "value": 0.5, "n": 4}]
    for name, value in scores.items():
        role = "id" if name == "imagenet" else "ood"
        rows.append({"variant": variant, "eval": name, "role": role, "group": name, "metric": "acc", "value": value, "n": 4})
    config = {"suite": "imagenet", "method": method, "backbone": "clip:ViT-B-16/openai", "seed": seed,
              "image_size": 224, "hparams": {}, "sizes": {}, "pretrained": True}  # fmt: skip
    return {"run_id": f"{method}-{seed}", "status": "done", "config": config, "evals": rows}


def test_ours_is_the_seed_mean_of_the_mapped_variant(tmp_path):
    base = {"imagenet": 0.8, "v2": 0.7, "a": 0.4, "r": 0.6, "sketch": 0.5, "objectnet": 0.3}
    records.write_record(tmp_path, imagenet_record("ft", "ft", 0, base))
    records.write_record(tmp_path, imagenet_record("ft", "ft", 1, {**base, "imagenet": 0.9}))
    text = reproduce.render("tpgm-imagenet", tmp_path)
    assert "| ft | published | 84.27 | 74.78 | 45.54 | 65.05 | 48.28 |" in text
    assert "| ft | ours (2 seeds) | 85.00 | 70.00 | 40.00 | 60.00 | 50.00 |" in text
    assert "| tpgm | ours | not run (clip:ViT-B-16/openai, tpgm, variant tpgm-posthoc) |" in text


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


def test_ours_shows_budget_departures_and_mixed_code(tmp_path):
    base = {"imagenet": 0.8, "v2": 0.7, "a": 0.4, "r": 0.6, "sketch": 0.5, "objectnet": 0.3}
    ft = {**imagenet_record("ft", "ft", 0, base), "code": {"source_sha256": "a" * 16, "commit": None, "dirty": None}}
    short = {"epochs": {"value": 1, "suite": 10, "source": "command line"}}
    zs = {**imagenet_record("zeroshot", "zeroshot", 0, base), "departures": short,
          "code": {"source_sha256": "b" * 16, "commit": None, "dirty": None}}
    for r in (ft, zs):
        records.write_record(tmp_path, r)
    text = reproduce.render("tpgm-imagenet", tmp_path)
    assert "| zero-shot | ours (1 seed) [budget: epochs 1 (suite 10)] |" in text
    assert "| ft | ours (1 seed) |" in text
    assert "**Mixed code**: these records come from 2 versions of the code" in text
