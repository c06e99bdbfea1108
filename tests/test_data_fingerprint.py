"""A record names the data it was made from (a content fingerprint of the built suite), so that a run is never
skipped against a record made from another copy of the data, and a table that mixes copies says so."""
import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.data.base import ArrayDataset, data_fingerprint
from benchmark.data.folders import ImageListDataset
from benchmark.errors import BenchmarkError
from benchmark.report import leaderboard, records
from helpers import tiny_run
from test_records import toy

pytestmark = pytest.mark.faults
FMNIST = Path("/usr/share/datasets/fashion-mnist")


def tree(root: Path, sizes=(3, 5)) -> list[tuple[str, int]]:
    samples = []
    for label, size in enumerate(sizes):
        (root / f"c{label}").mkdir(parents=True)
        path = root / f"c{label}" / "a.jpg"
        path.write_bytes(b"x" * size)
        samples.append((str(path), label))
    return samples


def test_files_count_by_place_in_their_tree_and_size_not_by_where_the_tree_lies(tmp_path):
    here = ImageListDataset(tree(tmp_path / "here"), transform=None)
    moved = ImageListDataset(tree(tmp_path / "elsewhere" / "copy"), transform=None)
    resized = ImageListDataset(tree(tmp_path / "resized", sizes=(3, 6)), transform=None)
    relabelled = ImageListDataset([(p, 1 - y) for p, y in here.samples], transform=None)
    assert data_fingerprint([here]) == data_fingerprint([moved])
    assert len({data_fingerprint([d]) for d in (here, resized, relabelled)}) == 3


def test_arrays_count_by_content_and_missing_or_unknown_parts_are_named(tmp_path):
    x = np.zeros((4, 2, 2, 3), np.uint8)
    y = np.arange(4)
    base = data_fingerprint([ArrayDataset(x, y, None)])
    assert base == data_fingerprint([ArrayDataset(x.copy(), y, None)])
    x[3, 1, 1, 2] = 1
    assert base != data_fingerprint([ArrayDataset(x, y, None)])
    assert base != data_fingerprint(["another name", ArrayDataset(x, y, None)])
    assert data_fingerprint([torch.utils.data.TensorDataset(torch.ones(2))]) != data_fingerprint([torch.utils.data.TensorDataset(torch.zeros(2))])
    with pytest.raises(BenchmarkError, match="cannot read .*gone.jpg"):
        data_fingerprint([ImageListDataset([(str(tmp_path / "gone.jpg"), 0)], transform=None)])
    with pytest.raises(TypeError, match="sources"):
        data_fingerprint([object()])


def copy_of_fmnist(to: Path, invert_test=False) -> Path:
    to.mkdir()
    for f in FMNIST.iterdir():
        shutil.copy(f, to / f.name)
    if invert_test:  # a different copy: the test images changed, the files' names kept (plain idx, not gz)
        path = to / "t10k-images-idx3-ubyte.gz"
        raw = bytearray(gzip.decompress(path.read_bytes()))
        raw[16:] = bytes(255 - b for b in raw[16:])
        path.unlink()
        (to / "t10k-images-idx3-ubyte").write_bytes(bytes(raw))
    return to


@pytest.mark.skipif(not FMNIST.is_dir(), reason="needs the system Fashion-MNIST")
def test_a_record_from_another_copy_of_the_data_is_never_skipped_against(tmp_path, monkeypatch, capsys):
    results = tmp_path / "results"
    monkeypatch.setenv("FASHION_MNIST_DIR", str(copy_of_fmnist(tmp_path / "copy")))
    assert tiny_run(results) == 0
    (path,) = (results / "runs" / "fmnist-c").glob("*.json")
    first = path.read_bytes()
    assert len(json.loads(first)["data"]) == 16
    monkeypatch.setenv("FASHION_MNIST_DIR", str(copy_of_fmnist(tmp_path / "moved")))  # same content elsewhere
    assert tiny_run(results) == 0 and "exists, skipped" in capsys.readouterr().out
    monkeypatch.setenv("FASHION_MNIST_DIR", str(copy_of_fmnist(tmp_path / "other", invert_test=True)))
    assert tiny_run(results) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path} was made from other data" in err and "--rerun replaces it" in err
    assert path.read_bytes() == first  # nothing trained, nothing lost
    assert tiny_run(results, "--rerun") == 0
    assert json.loads(path.read_bytes())["data"] != json.loads(first)["data"]
    (kept,) = (results / "runs" / "fmnist-c" / records.SUPERSEDED).glob("*.json")
    assert kept.read_bytes() == first


def test_the_leaderboard_says_when_records_come_from_different_copies_of_the_data():
    ft, lp = toy("ft", None), toy("lp", None)
    same, _ = leaderboard.render("toy", [{**ft, "data": "a" * 16}, {**lp, "data": "a" * 16}])
    assert "Mixed data" not in same
    mixed, _ = leaderboard.render("toy", [{**ft, "data": "a" * 16}, {**lp, "data": "b" * 16}])
    assert "**Mixed data**: these records come from 2 copies of the data" in mixed
    assert "- data bbbbbbbbbbbbbbbb: 1 run" in mixed
