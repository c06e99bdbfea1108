"""Bad sizes, seeds, paths and contradictory options: one-line errors with exit 2, never a traceback,
and no record (issue: nothing wrong is ever recorded)."""
import numpy as np
import pytest

from benchmark.__main__ import main
from helpers import TINY_SIZES, tiny_run

pytestmark = pytest.mark.faults  # the fault suite: `pytest -m faults`


@pytest.mark.parametrize("argv, message", [
    (["--size", "n_train=-5"], "--size n_train=-5 (fmnist-c): expects a whole number >= 1"),
    (["--size", "n_selection=0"], "--size n_selection=0 (fmnist-c): expects a whole number >= 1"),
    (["--size", "split_seed=-1"], "--size split_seed=-1 (fmnist-c): expects a whole number >= 0"),
    (["--size", "severities=x"], "expects whole numbers, e.g. severities=1,3"),
    (["--size", "corruptions="], "give at least one item"),
    (["--seed", "99999999999999999999"], "--seed 99999999999999999999: seeds are whole numbers from 0 to 2**32 - 1"),
    (["--seed", "-1"], "seeds are whole numbers"),
    (["--image-size", "0"], "--image-size must be a positive number of pixels, got 0"),
    (["--epochs", "2", "--set", "epochs=3"], "--epochs 2 and --set epochs=3 disagree"),
])  # fmt: skip
def test_bad_values_are_one_line_errors_before_any_data_is_read(argv, message, tmp_path, capsys):
    assert main(["run", "--dry-run", "--suite", "fmnist-c", "--results", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_a_single_corruption_is_one_name_not_letters(tmp_path, capsys):
    sizes = [s for s in TINY_SIZES if not s.startswith("corruptions=")]
    assert main(["run", "--suite", "fmnist-c", "--method", "ft", "--results", str(tmp_path), "--image-size", "32", "--epochs", "1",
                 "--no-progress", "--workers", "1", "--size", *sizes, "corruptions=fog"]) == 0  # fmt: skip
    assert "| ft | lite0 | selected | ft |" in (tmp_path / "fmnist-c.md").read_text()
    assert "fog" in (tmp_path / "fmnist-c.md").read_text()


def test_a_cache_that_cannot_be_created_is_a_one_line_error(tmp_path, capsys):
    from benchmark.corruption.cache import CorruptionCache
    from benchmark.errors import BenchmarkError

    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(BenchmarkError, match=r"cannot create the corrupted-set cache .*file/set: .*OODBENCH_CACHE"):
        CorruptionCache(blocker / "set", np.zeros((2, 32, 32, 3), np.uint8)).build([("fog", 1)], progress=False)


def test_a_cache_path_that_is_a_file_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("OODBENCH_CACHE", str(blocker))
    assert tiny_run(tmp_path / "results") == 2
    err = capsys.readouterr().err
    assert f"the cache folder {blocker} is not writable" in err and err.count("\n") == 1
    assert not list((tmp_path / "results").glob("runs/*/*.json"))


def test_a_wrong_dataset_variable_is_an_error_not_a_silent_fallback(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp_path / "nowhere"))  # the system copy exists in CI
    assert tiny_run(tmp_path) == 2
    err = capsys.readouterr().err
    assert f"$FASHION_MNIST_DIR is {tmp_path / 'nowhere'}, which does not hold Fashion-MNIST; fix or unset it" in err


def test_an_unwritable_results_folder_fails_before_any_data_is_read(tmp_path, monkeypatch, capsys):
    def no_data(*args, **kwargs):
        raise AssertionError("data was read before the results folder was checked")

    monkeypatch.setattr("benchmark.harness.run.prepare_suite", no_data)
    blocker = tmp_path / "results"
    blocker.write_text("a file where the results folder should be")
    assert tiny_run(blocker) == 2
    err = capsys.readouterr().err
    assert f"the results folder {blocker}/runs/fmnist-c is not writable" in err and err.count("\n") == 1


def test_stale_temp_files_of_killed_writes_are_cleaned_and_free_space_reported(tmp_path, capsys):
    import os
    import time

    folder = tmp_path / "runs" / "fmnist-c"
    folder.mkdir(parents=True)
    stale, fresh = folder / ".ft-0123.json.abc.tmp", folder / ".lp-0123.json.def.tmp"
    for f in (stale, fresh):
        f.write_text("{")
    os.utime(stale, (time.time() - 3600,) * 2)  # killed an hour ago; `fresh` may be another run's write
    assert tiny_run(tmp_path) == 0
    assert not stale.exists() and fresh.exists()
    assert "GiB free); cache: " in capsys.readouterr().out
