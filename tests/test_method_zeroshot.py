"""The zero-shot row: no training, one variant; refused on a backbone without a zero-shot head."""
from benchmark.report import records
from tests import tiny_cls
from tests.clip_ctx import TINY_CLIP


def test_zeroshot_run_trains_nothing_and_scores_the_built_model(monkeypatch, tmp_path):
    tiny_cls.register(monkeypatch)
    assert tiny_cls.cli_run(tmp_path, "zeroshot", TINY_CLIP) == 0
    (path,) = (tmp_path / "runs" / tiny_cls.NAME).glob("zeroshot-*.json")
    rec = records.read_record(path)
    assert rec["curves"] == {} and {r["variant"] for r in rec["evals"]} == {"zeroshot"}
    assert {r["eval"] for r in rec["evals"]} == {"selection", "clean", "inverted"}


def test_zeroshot_on_a_fresh_head_is_a_one_line_error(monkeypatch, tmp_path, capsys):
    tiny_cls.register(monkeypatch)
    assert tiny_cls.cli_run(tmp_path, "zeroshot", "lite0") == 2
    err = capsys.readouterr().err
    assert "zeroshot needs a backbone with a zero-shot head" in err and err.count("\n") == 1


def test_zeroshot_on_the_imagenet_fixture_suite(tmp_path):
    from fixtures_cls import build_imagenet_tree, imagenet_fixture_sizes

    from benchmark.__main__ import main

    root = build_imagenet_tree(tmp_path / "data")
    sizes = [f"{k}={v}" for k, v in imagenet_fixture_sizes().items()]
    argv = ["run", "--suite", "imagenet", "--method", "zeroshot", "--backbone", TINY_CLIP, "--data-root", str(root),
            "--results", str(tmp_path / "results"), "--no-progress", "--workers", "1", "--size", *sizes]  # fmt: skip
    assert main(argv) == 0
    (path,) = (tmp_path / "results" / "runs" / "imagenet").glob("zeroshot-*.json")
    evals = {r["eval"] for r in records.read_record(path)["evals"]}
    assert {"selection", "imagenet"} <= evals and len(evals) > 3  # ID + the OOD sets
