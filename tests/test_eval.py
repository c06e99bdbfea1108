"""`benchmark eval`: a checkpoint trained elsewhere, scored on a suite and recorded like a run (method
external). The round trip: a run's own final weights, exported, score exactly as the run scored them."""
import pytest
import torch

from benchmark.__main__ import main
from benchmark.harness import external as external_eval
from benchmark.models import create_backbone
from benchmark.report import records
from method_smoke import BACKBONE
from methods.base import Method
from methods.ft import FT
from tests import tiny_cls
from tests.clip_ctx import TINY_CLIP

SUITE = "tiny"  # method_smoke's two-class suite, built in memory
SCORE = ("eval", "role", "group", "metric", "value", "n")


def cli(results, checkpoint, *extra, suite=SUITE, backbone=BACKBONE) -> int:
    return main(["eval", "--suite", suite, "--backbone", backbone, "--checkpoint", str(checkpoint),
                 "--results", str(results), "--no-progress", "--workers", "1", *extra])  # fmt: skip


def scores(record: dict, variant: str) -> list[tuple]:
    return [tuple(row[k] for k in SCORE) for row in record["evals"] if row["variant"] == variant]


def only_record(results, pattern: str, suite: str = SUITE) -> dict:
    (path,) = (results / "runs" / suite).glob(pattern)
    record = records.read_record(path)
    assert records.problem_of(record, path) is None
    return record


def tiny_state(classes=("dark", "bright")) -> dict:
    torch.manual_seed(0)
    return create_backbone(BACKBONE, classes, 16).model.state_dict()


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(tiny_state(), path)
    return path


def test_a_runs_exported_weights_score_exactly_as_the_run_scored_them(tmp_path, monkeypatch, capsys):
    exported = tmp_path / "ft.pt"

    def finalize_and_export(self, model):
        variants = Method.finalize(self, model)
        torch.save(variants["ft"], exported)
        return variants

    monkeypatch.setattr(FT, "finalize", finalize_and_export)
    results = tmp_path / "results"
    argv = ["run", "--suite", SUITE, "--method", "ft", "--backbone", BACKBONE, "--epochs", "1", "--set", "lr=0.1",
            "--results", str(results), "--no-progress", "--workers", "1"]  # fmt: skip
    assert main(argv) == 0
    assert cli(results, exported) == 0
    run, external = only_record(results, "ft-*.json"), only_record(results, "external-*.json")
    assert {r["value"] for r in run["evals"]} != {0.5}  # it learnt: untrained weights would score otherwise
    assert scores(external, "external") == scores(run, "ft")
    assert {r["eval"] for r in external["evals"]} == {"selection", "clean", "noisy"}
    assert external["config"]["method"] == "external" and external["config"]["checkpoint"] == external["checkpoint"]["sha256"]
    assert external["checkpoint"]["file"] == "ft.pt" and external["checkpoint"]["head"] == "checkpoint"
    assert external["data"] == run["data"] and external["departures"] == {} and external["code"] == run["code"]
    capsys.readouterr()
    assert main(["leaderboard", "--suite", SUITE, "--results", str(results)]) == 0
    table = capsys.readouterr().out
    assert "| ft [budget: epochs 1 (suite 10)] | tiny-cnn-methods-test | selected | ft |" in table
    assert "| external | tiny-cnn-methods-test | selected | external |" in table


def test_the_same_weights_are_skipped_and_rerun_supersedes(tmp_path, checkpoint, capsys):
    results = tmp_path / "results"
    assert cli(results, checkpoint, "--name", "theirs") == 0
    (path,) = (results / "runs" / SUITE).glob("external-*.json")
    before = path.read_bytes()
    renamed = checkpoint.rename(tmp_path / "renamed.pt")  # the id is the content's, not the name's
    capsys.readouterr()
    assert cli(results, renamed) == 0
    assert "exists (as theirs), skipped (--rerun evaluates it again)" in capsys.readouterr().out
    assert path.read_bytes() == before
    assert cli(results, renamed, "--rerun", "--name", "mine") == 0
    assert "superseding the old record" in capsys.readouterr().out
    assert len(list((results / "runs" / SUITE / "superseded").glob("external-*.json"))) == 1
    record = only_record(results, "external-*.json")
    assert {r["variant"] for r in record["evals"]} == {"mine"} and record["checkpoint"]["file"] == "renamed.pt"


def test_a_state_dict_inside_a_checkpoint_dict_is_found(tmp_path, checkpoint):
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"epoch": 3, "state_dict": torch.load(checkpoint, weights_only=True)}, wrapped)
    assert cli(tmp_path / "a", checkpoint) == 0 and cli(tmp_path / "b", wrapped) == 0
    plain, inner = only_record(tmp_path / "a", "external-*.json"), only_record(tmp_path / "b", "external-*.json")
    assert scores(plain, "external") == scores(inner, "external") and plain["run_id"] != inner["run_id"]


def test_an_image_size_asked_for_is_a_departure_in_the_record(tmp_path, checkpoint):
    assert cli(tmp_path, checkpoint, "--image-size", "24") == 0
    record = only_record(tmp_path, "external-*.json")
    assert record["departures"] == {"image_size": {"value": 24, "suite": 16, "source": "command line"}}


def damaged(path):
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])


class Opaque:  # not a tensor: weights_only refuses to unpickle it
    pass


def edit_state(path, change):
    state = torch.load(path, weights_only=True)
    change(state)
    torch.save(state, path)


@pytest.mark.parametrize("spoil, message", [
    (damaged, "not a torch.save file of tensors, or damaged (RuntimeError: PytorchStreamReader failed"),
    (lambda p: p.write_text("not weights\n"), "cannot read checkpoint "),
    (lambda p: torch.save({"head.weight": Opaque()}, p), "damaged (UnpicklingError: Weights only load failed)"),
    (lambda p: torch.save({"epoch": 3}, p), "holds no state dict: expected a dict of tensors, or one under 'state_dict'"),
    (lambda p: torch.save(tiny_state(("a", "b", "c")), p),
     "checkpoint weights.pt has a head for 3 classes (head.bias), but suite tiny has 2 classes"),
    (lambda p: edit_state(p, lambda s: s.pop("backbone.1.running_mean")),
     "does not fit backbone tiny-cnn-methods-test: missing 1 key(s): backbone.1.running_mean"),
    (lambda p: edit_state(p, lambda s: s.update({f"extra.{i}": torch.zeros(1) for i in range(5)})),
     "unexpected 5 key(s): extra.0, extra.1, extra.2, ... (5 in all)"),
    (lambda p: edit_state(p, lambda s: s.update({"backbone.0.weight": torch.zeros(8, 3, 5, 5)})),
     "backbone.0.weight is [8, 3, 5, 5] there, [8, 3, 3, 3] in the model"),
    (lambda p: edit_state(p, lambda s: s["head.weight"].fill_(float("nan"))),
     "external: non-finite values in checkpoint weights.pt (first: head.weight); no record written"),
])  # fmt: skip
def test_a_checkpoint_that_does_not_fit_is_a_one_line_error(tmp_path, checkpoint, capsys, spoil, message):
    spoil(checkpoint)
    assert cli(tmp_path / "results", checkpoint) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not list((tmp_path / "results" / "runs").rglob("*.json"))


def test_a_missing_file_and_a_bad_label_are_one_line_errors(tmp_path, checkpoint, capsys):
    assert cli(tmp_path, tmp_path / "nowhere.pt") == 2
    assert cli(tmp_path, checkpoint, "--name", "a|b") == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"error: checkpoint {tmp_path / 'nowhere.pt'} not found",
                     "error: --name 'a|b': give a non-empty label without '|' or line breaks"]  # fmt: skip


def open_clip_layout(state: dict) -> dict:
    return {k.removeprefix("backbone.").removeprefix("text."): v for k, v in state.items()}


def test_a_clip_checkpoint_without_a_head_gets_the_zeroshot_head(tmp_path, monkeypatch, capsys):
    tiny_cls.register(monkeypatch)
    assert tiny_cls.cli_run(tmp_path, "zeroshot", TINY_CLIP) == 0  # seed 0: the same random towers as below
    zeroshot = only_record(tmp_path, "zeroshot-*.json", tiny_cls.NAME)
    torch.manual_seed(0)
    built = create_backbone(TINY_CLIP, tiny_cls.CLASSNAMES, 32).model  # its head is the zero-shot head
    state = {k: v for k, v in built.state_dict().items() if not k.startswith("head.")}
    for layout, weights in (("oodbench", state), ("open_clip", open_clip_layout(state))):
        path = tmp_path / f"{layout}.pt"
        torch.save(weights, path)
        capsys.readouterr()
        assert cli(tmp_path, path, suite=tiny_cls.NAME, backbone=TINY_CLIP) == 0
        assert "head: zero-shot (the checkpoint's text tower, the suite's class names)" in capsys.readouterr().out
        (external,) = [r for r in records.load_records(tmp_path, tiny_cls.NAME)
                       if r.get("checkpoint", {}).get("file") == path.name]  # fmt: skip
        assert scores(external, "external") == scores(zeroshot, "zeroshot")
        assert external["checkpoint"]["layout"] == layout and external["checkpoint"]["head"].startswith("zero-shot")
        other = create_backbone(TINY_CLIP, tiny_cls.CLASSNAMES, 32, pretrained=False)  # other random towers
        cfg, _ = external_eval.plan_external(tiny_cls.NAME, TINY_CLIP, "-")
        external_eval.load_into(other.model, other.extras, external_eval.read_checkpoint(path, TINY_CLIP), cfg, 3)
        assert torch.equal(other.model.head.weight, built.head.weight) and not other.model.head.bias.any()
