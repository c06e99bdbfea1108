"""Records know their code: identity and versions in every record, `--rerun` supersedes without losing the old
record, and a table that mixes code versions says so."""
import json

from benchmark.report import leaderboard, records
from helpers import tiny_run


def test_a_record_names_its_code_and_libraries(tmp_path):
    assert tiny_run(tmp_path) == 0
    (path,) = (tmp_path / "runs" / "fmnist-c").glob("*.json")
    rec = records.read_record(path)
    assert rec["code"] == records.code_identity()
    assert len(rec["code"]["source_sha256"]) == 16
    assert rec["code"]["commit"] is None or len(rec["code"]["commit"]) == 40  # a git checkout gives its commit
    assert {"torch", "torchvision", "timm", "open_clip", "numpy", "pandas", "python"} <= set(rec["versions"])
    assert "status" not in rec  # a record under runs/<suite>/ is a finished run; superseded ones live apart


def test_code_identity_hashes_the_source_it_runs(monkeypatch, tmp_path):
    files = records.source_files()
    names = [name for name, _ in files]
    assert "benchmark/harness/run.py" in names and "methods/tpgm.py" in names and "datasets/domainnet.toml" in names
    assert not any(n.startswith(("results/", "tests/")) for n in names)
    changed = tmp_path / "tpgm.py"
    changed.write_text(dict(files)["methods/tpgm.py"].read_text() + "\n# a fix\n")
    monkeypatch.setattr(records, "source_files", lambda: [(n, changed if n == "methods/tpgm.py" else p) for n, p in files])
    before = records.code_identity()
    records.code_identity.cache_clear()
    try:
        assert records.code_identity()["source_sha256"] != before["source_sha256"]
    finally:
        records.code_identity.cache_clear()


def test_rerun_supersedes_the_record_and_keeps_the_old_one(tmp_path, capsys):
    assert tiny_run(tmp_path) == 0
    (path,) = (tmp_path / "runs" / "fmnist-c").glob("*.json")
    old = path.read_bytes()
    assert tiny_run(tmp_path, "--rerun") == 0
    assert "superseding the old record" in capsys.readouterr().out
    (moved,) = (tmp_path / "runs" / "fmnist-c" / records.SUPERSEDED).glob("*.json")
    assert moved.read_bytes() == old and moved.name.startswith(path.stem + ".")
    new = json.loads(path.read_bytes())
    assert new["run_id"] == json.loads(old)["run_id"] and new["started"] >= json.loads(old)["started"]
    assert [r["run_id"] for r in records.load_records(tmp_path, "fmnist-c")] == [new["run_id"]]  # superseded not loaded
    assert tiny_run(tmp_path, "--rerun") == 0  # a second rerun keeps both older records
    assert len(list((tmp_path / "runs" / "fmnist-c" / records.SUPERSEDED).glob("*.json"))) == 2


def toy(method, code):
    rows = [{"variant": method, "eval": e, "role": role, "group": e, "metric": "acc", "value": 0.5, "n": 1}
            for e, role in (("selection", "selection"), ("clean", "id"), ("fog@1", "ood"))]
    config = {"suite": "toy", "method": method, "backbone": "lite0", "seed": 0, "hparams": {}, "sizes": {}}
    rec = {"run_id": f"{method}-0", "config": config, "evals": rows}
    return {**rec, "code": code} if code else rec


def test_the_leaderboard_says_when_records_come_from_different_code():
    a = {"source_sha256": "a" * 16, "commit": "1" * 40, "dirty": False}
    b = {"source_sha256": "b" * 16, "commit": "2" * 40, "dirty": True}
    same, _ = leaderboard.render("toy", [toy("ft", a), toy("lp", a)])
    assert "Mixed code" not in same
    mixed, _ = leaderboard.render("toy", [toy("ft", a), toy("lp", b), toy("l2-sp", None)])
    assert "**Mixed code**: these records come from 3 versions of the code" in mixed
    assert "- 1111111111 source aaaaaaaaaaaaaaaa: 1 run" in mixed
    assert "- 2222222222+dirty source bbbbbbbbbbbbbbbb: 1 run" in mixed
    assert "- unknown (record predates code identity): 1 run" in mixed
