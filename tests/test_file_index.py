"""Class-folder listings are scanned once: the cached index is read back without listing any folder, is
invalidated by a changed folder, rebuilt when damaged, and lists exactly what torchvision's make_dataset does."""
import os
import time

import pytest
from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset

from benchmark.data import folders
from benchmark.data.folders import scan_classes
from benchmark.errors import BenchmarkError

CLASSES = {"n02": 0, "n01": 2, "n03": 1}  # not in name order: labels come from the map


def make_tree(root):
    """Images (some nested, some upper-case extensions) beside files and folders the scan must skip."""
    for name in [*CLASSES, "unmapped"]:
        for rel in ("a.JPEG", "b.png", "notes.txt", "sub/c.jpg", "sub/deeper/d.jpeg", "empty/.keep"):
            path = root / name / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x")
    return root


def settle(root):
    """Folder times in the past: an index is cached only once its folders have stopped changing."""
    past = time.time() - 60
    for folder, _, _ in os.walk(root):
        os.utime(folder, (past, past))


@pytest.fixture
def listings(monkeypatch):
    """How many folders get listed (os.walk lists through os.scandir)."""
    calls = []
    scandir, listdir = os.scandir, os.listdir
    monkeypatch.setattr(os, "scandir", lambda *a: calls.append(a) or scandir(*a))
    monkeypatch.setattr(os, "listdir", lambda *a: calls.append(a) or listdir(*a))
    return calls


def index_file(root):
    return folders.index_path(str(root), CLASSES)


def test_lists_what_make_dataset_lists(tmp_path):
    root = make_tree(tmp_path / "data")
    expected = make_dataset(str(root), CLASSES, extensions=IMG_EXTENSIONS, allow_empty=True)
    assert scan_classes(root, CLASSES, "t") == expected
    settle(root)
    assert scan_classes(root, CLASSES, "t") == expected  # scanned and cached
    assert scan_classes(root, CLASSES, "t") == expected  # read from the index
    assert len(expected) == 12


def test_second_scan_lists_no_folder(tmp_path, listings):
    root = make_tree(tmp_path / "data")
    settle(root)
    first = scan_classes(root, CLASSES, "t")
    assert listings and index_file(root).exists()
    listings.clear()
    assert scan_classes(root, CLASSES, "t") == first
    assert listings == []


def test_a_folder_changed_just_before_the_scan_is_not_cached(tmp_path):
    # Its mtime could move again within the filesystem's time resolution without a stamp showing it.
    root = make_tree(tmp_path / "data")
    scan_classes(root, CLASSES, "t")
    assert not index_file(root).exists()


@pytest.mark.parametrize("change", ["add", "remove", "add nested"])
def test_a_changed_folder_invalidates_the_index(tmp_path, listings, change):
    root = make_tree(tmp_path / "data")
    settle(root)
    before = scan_classes(root, CLASSES, "t")
    listings.clear()
    if change == "add":
        (root / "n03" / "new.jpg").write_bytes(b"x")
    elif change == "remove":
        (root / "n03" / "a.JPEG").unlink()
    else:
        (root / "n01" / "sub" / "deeper" / "new.png").write_bytes(b"x")
    after = scan_classes(root, CLASSES, "t")
    assert listings
    assert after == make_dataset(str(root), CLASSES, extensions=IMG_EXTENSIONS, allow_empty=True) != before


@pytest.mark.parametrize("damage", [b"", b"not an index", "truncated"])
def test_a_damaged_index_is_rebuilt(tmp_path, listings, damage):
    root = make_tree(tmp_path / "data")
    settle(root)
    expected = scan_classes(root, CLASSES, "t")
    index = index_file(root)
    index.write_bytes(index.read_bytes()[:100] if damage == "truncated" else damage)
    listings.clear()
    assert scan_classes(root, CLASSES, "t") == expected
    assert listings  # scanned again, and the repaired index serves the next scan
    listings.clear()
    assert scan_classes(root, CLASSES, "t") == expected and listings == []


def test_missing_and_empty_class_folders_are_still_refused(tmp_path):
    root = make_tree(tmp_path / "data")
    settle(root)
    scan_classes(root, CLASSES, "t")
    for f in ("a.JPEG", "b.png", "sub/c.jpg", "sub/deeper/d.jpeg"):
        (root / "n02" / f).unlink()
    with pytest.raises(BenchmarkError, match="1 class folders hold no images"):
        scan_classes(root, CLASSES, "t")
