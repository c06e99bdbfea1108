"""Every user mistake is one line on stderr and exit code 2, never a traceback."""
import gzip

import numpy as np
import pytest

from benchmark.__main__ import main
from benchmark.data import cards, fmnist
from benchmark.errors import BenchmarkError


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["run", "--suite", "imagenet-zz"], "unknown suite 'imagenet-zz'; valid: "),
        (["run", "--method", "magic"], "unknown method 'magic'; valid: "),
        (["run", "--method", "ft", "--backbone", "nonet"], "unknown backbone 'nonet'; valid: "),
        (["run", "--method", "ft", "--set", "lrr=0.1"], "no selected method has hyper-parameter(s) ['lrr']"),
        (["run", "--method", "ft", "--set", "lr=fast"], "hyper-parameter lr expects float"),
        (["run", "--method", "ft", "--set", "lr"], "--set expects key=value"),
        (["run", "--suite", "fmnist-c", "--method", "ft", "--size", "n_trian=3"], "unknown fmnist-c size option(s) ['n_trian']"),
        (["run", "--suite", "fmnist-c", "--method", "ft", "--size", "severities=(7,)"], "severity must be one of 1..5"),
        (["run", "--suite", "fmnist-c", "--method", "ft", "--size", "corruptions=('rain',)"], "unknown corruption 'rain'"),
        # Method hyper-parameters are checked when the run is configured: these fail before any data is read
        # (the imagenet data root does not exist).
        (["run", "--suite", "imagenet", "--data-root", "/nonexistent-oodbench", "--method", "ftp",
          "--set", "weight_decay=0.1"], "ftp needs weight_decay 0"),
        (["run", "--suite", "imagenet", "--data-root", "/nonexistent-oodbench", "--method", "tpgm",
          "--set", "norm_mode=l3"], "tpgm: unknown norm_mode 'l3'"),
        (["run", "--suite", "imagenet", "--data-root", "/nonexistent-oodbench", "--method", "wise-ft",
          "--set", "alphas=(1.5,)"], "wise-ft: alphas must be"),
        (["prepare", "nodata"], "unknown dataset 'nodata'"),
        (["leaderboard", "--results", "/nonexistent-oodbench"], "no finished records"),
    ],
)
def test_bad_input_is_one_line_exit_2(argv, expected, capsys, tmp_path):
    if argv[0] == "run":
        argv = argv + ["--results", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err and err.count("\n") == 1


def write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


@pytest.fixture
def no_installed_fmnist(monkeypatch, tmp_path):
    where = cards.card("fashion-mnist")["location"]
    monkeypatch.setitem(where, "fallbacks", [str(tmp_path / "no-debian"), str(tmp_path / "home")])
    monkeypatch.delenv(where["env"], raising=False)


def test_missing_dataset_says_where_and_how(no_installed_fmnist, tmp_path, capsys):
    assert main(["run", "--suite", "fmnist-c", "--method", "ft", "--data-root", str(tmp_path / "empty"), "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "Fashion-MNIST not found" in err and "apt-get install dataset-fashion-mnist" in err and str(tmp_path / "empty") in err


def test_partial_and_corrupt_idx_files_are_named(no_installed_fmnist, tmp_path):
    root = tmp_path / "fm"
    root.mkdir()
    write_idx(root / "train-images-idx3-ubyte.gz", np.zeros((3, 28, 28)))
    with pytest.raises(BenchmarkError, match="partial: missing t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, train-labels"):
        fmnist.find(root)
    (root / "bad.gz").write_bytes(b"not gzip at all")
    with pytest.raises(BenchmarkError, match="cannot read"):
        fmnist.read_idx(root / "bad.gz")
    good = gzip.decompress((root / "train-images-idx3-ubyte.gz").read_bytes())
    (root / "cut").write_bytes(good[:-10])
    with pytest.raises(BenchmarkError, match="truncated or corrupt"):
        fmnist.read_idx(root / "cut")
    assert fmnist.read_idx(root / "train-images-idx3-ubyte.gz").shape == (3, 28, 28)


def test_wrong_counts_and_class_range_are_rejected(no_installed_fmnist, tmp_path):
    root = tmp_path / "fm"
    root.mkdir()
    for split, n in (("train", 60000), ("t10k", 10000)):
        write_idx(root / f"{split}-images-idx3-ubyte.gz", np.zeros((n, 28, 28)))
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", np.full(n, 3))
    files = fmnist.find(root)
    assert fmnist.load_split(files, "test")[0].shape == (10000, 28, 28)
    write_idx(root / "t10k-labels-idx1-ubyte.gz", np.full(10000, 12))
    with pytest.raises(BenchmarkError, match="expected 10 classes"):
        fmnist.load_split(files, "test")
    write_idx(root / "t10k-images-idx3-ubyte.gz", np.zeros((9999, 28, 28)))
    with pytest.raises(BenchmarkError, match="expected 10000 of 28x28"):
        fmnist.load_split(files, "test")


def test_prepare_reports_missing_data(no_installed_fmnist, tmp_path, capsys):
    assert main(["prepare", "fashion-mnist", "--data-root", str(tmp_path / "nothing")]) == 2
    assert "missing: Fashion-MNIST not found there" in capsys.readouterr().out
