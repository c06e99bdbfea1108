"""`benchmark run --log tensorboard`: event files whose scalars are the record's curves and evaluation, nothing
without the flag, a resumed run continuing its log without repeating a step, and a one-line error saying how
to install the package when it is missing."""
import sys

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from benchmark.__main__ import main
from benchmark.engine import runlog
from benchmark.report import records
from method_smoke import BACKBONE
from methods import METHODS

STEPS_PER_EPOCH = 4  # the tiny suite's 16 training images in batches of 4
EPOCHS = 2


def run(results, *extra) -> int:
    return main(["run", "--suite", "tiny", "--method", "ft", "--backbone", BACKBONE, "--epochs", str(EPOCHS),
                 "--set", "batch_size=4", "--results", str(results), "--no-progress", "--workers", "1", *extra])  # fmt: skip


def the_record(results) -> dict:
    (path,) = (results / "runs" / "tiny").glob("*.json")
    return records.read_record(path)


def scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """Every scalar TensorBoard shows for the run folder: tag -> [(step, value)] in the order it reads them."""
    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def check_against_record(results) -> dict:
    record = the_record(results)
    logged = scalars(results / "tensorboard" / "tiny" / record["run_id"])
    steps = list(range(1, EPOCHS * STEPS_PER_EPOCH + 1))
    assert [s for s, _ in logged["train/ce"]] == [s for s, _ in logged["lr/group0"]] == steps
    for name, values in record["curves"].items():
        assert [s for s, _ in logged[f"epoch/{name}"]] == [STEPS_PER_EPOCH * (e + 1) for e in range(EPOCHS)]
        assert [v for _, v in logged[f"epoch/{name}"]] == pytest.approx(values, rel=1e-6)
    for row in record["evals"]:
        assert logged[f"eval/{row['variant']}/{row['eval']}/{row['metric']}"] == [(steps[-1], pytest.approx(row["value"]))]
    return logged


def test_a_logged_run_writes_its_curves_and_evaluation(tmp_path):
    assert run(tmp_path, "--log", "tensorboard") == 0
    logged = check_against_record(tmp_path)
    lrs = [v for _, v in logged["lr/group0"]]
    assert lrs[0] == pytest.approx(0.01) and lrs == sorted(lrs, reverse=True)  # the recipe's lr, cosine decay
    # The epoch curve is the mean of the epoch's step losses, as the record computes it.
    first_epoch = [v for _, v in logged["train/ce"][:STEPS_PER_EPOCH]]
    assert logged["epoch/train_ce"][0][1] == pytest.approx(sum(first_epoch) / STEPS_PER_EPOCH, rel=1e-5)


def test_without_the_flag_nothing_is_logged(tmp_path):
    assert run(tmp_path) == 0
    assert not (tmp_path / "tensorboard").exists() and the_record(tmp_path)["curves"]["train_ce"]


def test_a_resumed_run_continues_its_log_without_repeating_steps(tmp_path, monkeypatch, capsys):
    cls = METHODS.get("ft")
    after_step, step = cls.after_step, runlog.TensorBoardLog.step

    def crash_in_second_epoch(self, model, i):
        if i == STEPS_PER_EPOCH + 1:  # two steps past the checkpoint of epoch 1
            raise KeyboardInterrupt
        return after_step(self, model, i)

    def flushed_step(self, *args):  # as if the writer had flushed just before the crash: the steps are on disk
        step(self, *args)
        self.writer.flush()

    monkeypatch.setattr(cls, "after_step", crash_in_second_epoch)
    monkeypatch.setattr(runlog.TensorBoardLog, "step", flushed_step)
    assert run(tmp_path, "--log", "tensorboard") == 130
    monkeypatch.undo()
    (folder,) = (tmp_path / "tensorboard" / "tiny").iterdir()
    (crashed,) = folder.iterdir()
    assert [s for s, _ in scalars(folder)["train/ce"]] == [1, 2, 3, 4, 5, 6]
    # The resumed run is a later process: TensorBoard reads its file (named by the second it was opened) after.
    stamp = int(crashed.name.split(".")[3])
    crashed.rename(folder / crashed.name.replace(f".{stamp:010d}.", f".{stamp - 1:010d}.", 1))
    capsys.readouterr()
    assert run(tmp_path, "--log", "tensorboard") == 0
    assert "resuming" in capsys.readouterr().out and len(list(folder.iterdir())) == 2
    check_against_record(tmp_path)  # steps 5 and 6 once each, though both attempts logged them


def test_a_missing_tensorboard_is_one_line_saying_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # what importing it does when it is not installed
    assert run(tmp_path, "--log", "tensorboard") == 2
    err = capsys.readouterr().err
    assert err == "error: --log tensorboard needs the tensorboard package: pip install 'oodbench[log]'\n"
    assert not list(tmp_path.rglob("*.json")) and not (tmp_path / "tensorboard").exists()  # nothing ran


def test_a_method_that_does_not_train_logs_its_evaluation(tmp_path):
    assert main(["run", "--suite", "tiny", "--method", "lp", "--backbone", BACKBONE, "--results", str(tmp_path),
                 "--no-progress", "--workers", "1", "--log", "tensorboard"]) == 0  # fmt: skip
    record = the_record(tmp_path)
    logged = scalars(tmp_path / "tensorboard" / "tiny" / record["run_id"])
    assert logged == {f"eval/{r['variant']}/{r['eval']}/{r['metric']}": [(0, pytest.approx(r["value"]))]
                      for r in record["evals"]}  # fmt: skip
