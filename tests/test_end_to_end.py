"""A real `run` at tiny size: Fashion-MNIST + corruptions + pretrained Lite0, records, resume, skip."""
import json

import pytest

from benchmark.report import records
from tests.helpers import tiny_run


def test_run_writes_one_record_per_method_and_a_leaderboard(tmp_path, capsys):
    assert tiny_run(tmp_path, methods=("ft", "lp")) == 0
    paths = sorted((tmp_path / "runs" / "fmnist-c").glob("*.json"))
    assert [p.name.split("-")[0] for p in paths] == ["ft", "lp"]
    rec = records.read_record(paths[0])
    assert rec["code"]["source_sha256"] and rec["config"]["method"] == "ft" and rec["config"]["seed"] == 0
    evals = {(r["eval"], r["role"]) for r in rec["evals"]}
    assert evals == {("selection", "selection"), ("fmnist", "id"), ("fog@3", "ood"), ("contrast@3", "ood")}
    n = {r["eval"]: r["n"] for r in rec["evals"]}
    assert n == {"selection": 16, "fmnist": 24, "fog@3": 8, "contrast@3": 8}
    assert all(0.0 <= r["value"] <= 1.0 and r["metric"] == "acc" for r in rec["evals"])
    assert rec["curves"]["train_ce"] and rec["wall_s"] > 0 and "torch" in rec["versions"]
    table = (tmp_path / "fmnist-c.md").read_text()
    assert "| ft | lite0 | selected | ft |" in table and "fog" in table and "contrast" in table
    assert (tmp_path / "fmnist-c.csv").is_file()
    assert not list(tmp_path.glob("runs/fmnist-c/*.ckpt.pt"))  # checkpoints removed once the record exists


def test_rerun_skips_and_never_rewrites(tmp_path, capsys):
    assert tiny_run(tmp_path) == 0
    (path,) = (tmp_path / "runs" / "fmnist-c").glob("*.json")
    before = path.read_bytes()
    assert tiny_run(tmp_path) == 0
    assert "exists, skipped" in capsys.readouterr().out
    assert path.read_bytes() == before
    with pytest.raises(Exception, match="never overwritten"):
        records.write_record(tmp_path, json.loads(before))


def test_interrupted_run_resumes_from_checkpoint_and_matches_uninterrupted(tmp_path, monkeypatch, capsys):
    from methods.ft import FT

    assert tiny_run(tmp_path / "clean", epochs=2) == 0
    (clean,) = (tmp_path / "clean" / "runs" / "fmnist-c").glob("*.json")

    def crash_in_second_epoch(self, model, step):
        if step == 2:  # 48 images / batch 32 = 2 steps per epoch: step 2 is the first of epoch 2
            raise KeyboardInterrupt

    monkeypatch.setattr(FT, "after_step", crash_in_second_epoch)
    assert tiny_run(tmp_path / "resumed", epochs=2) == 130
    assert len(list((tmp_path / "resumed").glob("runs/fmnist-c/*.ckpt.pt"))) == 1
    assert not list((tmp_path / "resumed").glob("runs/fmnist-c/*.json"))
    monkeypatch.undo()
    capsys.readouterr()
    assert tiny_run(tmp_path / "resumed", epochs=2) == 0
    assert "after epoch 1" in capsys.readouterr().out
    (resumed,) = (tmp_path / "resumed" / "runs" / "fmnist-c").glob("*.json")
    values = lambda p: [(r["variant"], r["eval"], r["value"]) for r in records.read_record(p)["evals"]]  # noqa: E731
    assert values(resumed) == values(clean)
    curves = lambda p: records.read_record(p)["curves"]  # noqa: E731
    assert curves(resumed) == curves(clean)


def test_nan_loss_is_a_one_line_error(tmp_path, capsys):
    assert tiny_run(tmp_path, "--set", "lr=1e30", "grad_clip=0.0") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ft: non-finite loss") and "\n" not in err
    assert not list((tmp_path / "runs" / "fmnist-c").glob("*.json"))
