"""Run checkpoints: loaded with weights_only (a planted pickle never runs), a damaged or refused one, or one in a
format this code cannot resume, is moved aside and named while the run restarts, a failed save is one line and
leaves nothing, every method resumes exactly."""
import errno
import io
import os

import pytest
import torch

from benchmark.engine import loop
from benchmark.errors import BenchmarkError
from benchmark.report import records
from methods import METHODS
from method_smoke import run_smoke
from tests.clip_ctx import tiny_clip_context

pytestmark = pytest.mark.faults  # the fault suite: `pytest -m faults`


def results(record: dict):
    return [(r["variant"], r["eval"], r["value"]) for r in record["evals"]], record["curves"]


def checkpoint_of(record: dict, root):
    return records.record_path(root, "tiny", record["run_id"]).with_suffix(".ckpt.pt")


@pytest.fixture(scope="module")
def clean_ft(tmp_path_factory):
    return run_smoke("ft", tmp_path_factory.mktemp("clean"), epochs=2)


class Payload:
    """Unpickling this (without weights_only) creates the directory `marker`: code planted in a checkpoint."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def planted(marker) -> bytes:
    buffer = io.BytesIO()
    torch.save({"model": {}, "method": Payload(marker), "epoch": 1}, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("damage", ["planted", "truncated", "empty"])
def test_a_damaged_or_planted_checkpoint_is_moved_aside_named_and_the_run_restarts(damage, clean_ft, tmp_path, capsys):
    marker = tmp_path / "payload-ran"
    if damage == "planted":
        data = planted(marker)
        torch.load(io.BytesIO(planted(tmp_path / "proof")), weights_only=False)
        assert (tmp_path / "proof").is_dir()  # the payload is real: an unrestricted load runs it
    elif damage == "truncated":  # the first half of a checkpoint (a crash or full disk while saving)
        loop.save_checkpoint(tmp_path / "whole.pt", {"model": {k: torch.randn(64) for k in "abcd"}, "epoch": 1})
        data = (tmp_path / "whole.pt").read_bytes()
        data = data[: len(data) // 2]
    else:
        data = b""
    checkpoint = checkpoint_of(clean_ft, tmp_path)
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(data)

    record = run_smoke("ft", tmp_path, epochs=2)

    assert not marker.exists()
    assert results(record) == results(clean_ft)
    (aside,) = checkpoint.parent.glob(f"{checkpoint.name}.damaged-*")
    assert aside.read_bytes() == data and not checkpoint.exists()
    out = capsys.readouterr().out
    (notice,) = [line for line in out.splitlines() if str(checkpoint) in line]
    assert ("refused" if damage == "planted" else "damaged") in notice and aside.name in notice
    assert "resuming" not in out


def old_format() -> dict:
    """A checkpoint as the loop wrote them before mid-epoch resume (no step, no per-process random states)."""
    model = torch.nn.Linear(2, 2)  # stands in: the file is refused before anything of it is loaded
    return {"model": model.state_dict(), "optimizer": torch.optim.SGD(model.parameters(), lr=0.1).state_dict(),
            "schedule": {}, "method": {}, "epoch": 1, "curves": {}, "rng": torch.get_rng_state()}  # fmt: skip


def other_model() -> dict:
    """Every key of today's checkpoints, with weights of another model."""
    return {**old_format(), "batches": 0, "sums": {}, "rng": [{"cpu": torch.get_rng_state()}]}


@pytest.mark.parametrize("stale, why", [(old_format, "no batches, sums"), (other_model, "weights that do not fit")])
def test_a_checkpoint_in_an_old_or_unknown_format_is_moved_aside_and_the_run_starts_afresh(stale, why, clean_ft, tmp_path,
                                                                                           capsys):  # fmt: skip
    checkpoint = checkpoint_of(clean_ft, tmp_path)
    checkpoint.parent.mkdir(parents=True)
    loop.save_checkpoint(checkpoint, stale())
    data = checkpoint.read_bytes()

    record = run_smoke("ft", tmp_path, epochs=2)

    assert results(record) == results(clean_ft)
    (aside,) = checkpoint.parent.glob(f"{checkpoint.name}.stale-*")
    assert aside.read_bytes() == data and not checkpoint.exists()  # kept, never deleted
    out = capsys.readouterr().out
    (notice,) = [line for line in out.splitlines() if str(checkpoint) in line]
    assert f"is in an old or unknown format ({why}" in notice and aside.name in notice
    assert "resuming" not in out


def test_a_failed_save_is_one_line_naming_the_file_and_leaves_no_temp_file(tmp_path, monkeypatch):
    def full_disk(obj, f):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    path = tmp_path / "runs" / "run.ckpt.pt"
    with pytest.raises(BenchmarkError) as e:
        loop.save_checkpoint(path, {"epoch": 1})
    assert str(e.value) == f"cannot write {path}: No space left on device"
    assert list(path.parent.iterdir()) == []


def test_a_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "run.ckpt.pt"
    loop.save_checkpoint(path, {"epoch": 1})
    monkeypatch.setattr(torch, "save", lambda obj, f: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    with pytest.raises(BenchmarkError, match="cannot write"):
        loop.save_checkpoint(path, {"epoch": 2})
    assert loop.load_checkpoint(path, "cpu") == {"epoch": 1} and list(tmp_path.iterdir()) == [path]


# Every method that trains on the tiny CNN suite (lp and zeroshot have no training loop, hence no checkpoint).
TRAINED = ["ft", "tpgm", "ftp", "l2-sp", "fsr", "lp-ft", "wise-ft", "soup"]


@pytest.mark.parametrize("method", TRAINED)
def test_every_method_resumes_from_a_weights_only_checkpoint_exactly(method, tmp_path, monkeypatch, capsys):
    # Batch 4: two selection batches, so a held-out stream that restarts on resume would show.
    hp = {"epochs": 2, "batch_size": 4}
    clean = run_smoke(method, tmp_path / "clean", **hp)
    cls = METHODS.get(method)
    after_step = cls.after_step

    def crash_in_second_epoch(self, model, step):
        if step == 4:  # 16 images / batch 4 = 4 steps per epoch: step 4 is the first of epoch 2
            raise KeyboardInterrupt
        return after_step(self, model, step)

    monkeypatch.setattr(cls, "after_step", crash_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        run_smoke(method, tmp_path / "resumed", **hp)
    monkeypatch.undo()
    checkpoint = checkpoint_of(clean, tmp_path / "resumed")
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 1
    capsys.readouterr()
    resumed = run_smoke(method, tmp_path / "resumed", **hp)
    out = capsys.readouterr().out
    assert "after epoch 1" in out and "damaged" not in out and "refused" not in out
    assert results(resumed) == results(clean)


@pytest.mark.parametrize("method", ["flyp", "lipsum-ft"])
def test_clip_method_state_round_trips_under_weights_only(method):
    """The CLIP-only methods cannot run on the tiny CNN suite: their own state is checked directly."""
    model, m, batch = tiny_clip_context(METHODS.get(method), {})
    m.loss(model, batch)  # advances the method's generator
    buffer = io.BytesIO()
    torch.save(m.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    fresh = tiny_clip_context(METHODS.get(method), {})[1]
    fresh.load_state_dict(saved)
    assert torch.equal(fresh.state_dict()["generator"], m.state_dict()["generator"])
