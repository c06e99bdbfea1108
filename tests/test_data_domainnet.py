"""The domainnet suite on a tiny fixture: official split files honoured, selection held out of real_train
only, labels checked against class folders, wrong data fails in one line, prepare reports."""
from pathlib import Path

import pytest

from benchmark.data import cards, domainnet
from benchmark.errors import BenchmarkError
from fixtures_cls import DOMAINNET_FIXTURE_LABELS, OracleModel, build_domainnet_tree, fixture_suite, score


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return build_domainnet_tree(tmp_path_factory.mktemp("domainnet"))


def suite_from(root, **sizes):
    return fixture_suite("domainnet", root, **sizes)


def listed(root, domain, split):
    lines = (root / "domainnet" / f"{domain}_{split}.txt").read_text().split("\n")
    return {str(root / "domainnet" / line.split()[0]) for line in lines if line}


def test_split_files_are_honoured_and_selection_is_disjoint(tree):
    suite = suite_from(tree)
    assert suite.classnames == ["aircraft carrier", "airplane", "cello", "cell phone", "The Eiffel Tower"]
    assert [(e.name, e.role) for e in suite.evals] == [("real", "id"), ("sketch", "ood"), ("painting", "ood"),
                                                       ("infograph", "ood"), ("clipart", "ood")]  # fmt: skip
    train, selection = {p for p, _ in suite.train.samples}, {p for p, _ in suite.selection.samples}
    assert len(selection) == 5 and len(train) == 45  # 10% of the 50 real_train lines
    assert train | selection == listed(tree, "real", "train") and not train & selection
    for e in suite.evals:
        assert {p for p, _ in e.dataset.samples} == listed(tree, e.name, "test")
    assert not (train | selection) & listed(tree, "real", "test")
    # Same seed, same split; another seed, another split.
    assert {p for p, _ in suite_from(tree).selection.samples} == selection
    assert {p for p, _ in suite_from(tree, split_seed=1).selection.samples} != selection


def test_labels_follow_the_split_files_exactly(tree):
    suite = suite_from(tree)
    model = OracleModel(DOMAINNET_FIXTURE_LABELS)
    for e in suite.all_evals():
        assert score(model, e) == 1.0, e.name


def test_quickdraw_only_on_request(tree):
    assert "quickdraw" not in [e.name for e in suite_from(tree).evals]
    suite = suite_from(tree, evals="sketch,quickdraw")
    assert [(e.name, e.role) for e in suite.evals] == [("real", "id"), ("sketch", "ood"), ("quickdraw", "ood")]


def test_class_list_facts_and_card():
    names = domainnet.classes()
    assert len(names) == 345 and names[0] == "aircraft_carrier" and names[-1] == "zigzag"
    assert names.index("cello") + 1 == names.index("cell_phone")  # not ASCII order: the split files' order
    counts = cards.card("domainnet")["counts"]
    assert set(counts) == {f"{d}_{s}" for d in domainnet.DOMAINS for s in ("train", "test")}  # one per split file
    assert sum(counts.values()) == 586_575


@pytest.mark.parametrize("line, message", [
    ("real/cello/x.jpg 67", r"real_test.txt:1: label 67 is 'cell_phone' in the class list but the folder is 'cello'"),
    ("real/cello/x.jpg 345", r"real_test.txt:1: label 345 out of range 0..344"),
    ("sketch/cello/x.jpg 66", r"real_test.txt:1: path 'sketch/cello/x.jpg' is not real/<class>/<file>"),
    ("real/cello/x.jpg", r"real_test.txt:1: expected '<domain>/<class>/<file> <label>'"),
    ("real/cello/missing.jpg 66", r"real_test.txt:1: image .*missing.jpg is missing"),
])  # fmt: skip
def test_bad_split_lines_are_one_line_errors(tmp_path, line, message):
    root = build_domainnet_tree(tmp_path, train_per_class=10, test_per_class=1)
    (root / "domainnet" / "real_test.txt").write_text(line + "\n")
    with pytest.raises(BenchmarkError, match=message) as e:
        suite_from(root)
    assert "\n" not in str(e.value)


def test_missing_data_and_wrong_counts(tmp_path, monkeypatch):
    root = build_domainnet_tree(tmp_path, domains=("real", "sketch", "painting", "infograph"))
    with pytest.raises(BenchmarkError, match="DomainNet not found .*domainnet.*csr.bu.edu.*DOMAINNET_DIR"):
        suite_from(root)
    assert suite_from(root, evals="sketch,painting,infograph").evals[-1].name == "infograph"
    (root / "domainnet" / "sketch_test.txt").unlink()
    with pytest.raises(BenchmarkError, match="split file sketch_test.txt not in .*domainnet/txt/sketch_test.txt"):
        suite_from(root, evals="sketch")
    # Full label space: the split files must match the card's counts and real_train must cover 345 classes.
    with pytest.raises(BenchmarkError, match="DomainNet real_train has 50 images, expected 120906"):
        suite_from(root, evals="painting", classes=None)
    monkeypatch.setitem(cards.card("domainnet")["counts"], "real_train", 50)  # the check reads the card
    with pytest.raises(BenchmarkError, match="real_train covers 5 of 345 classes"):
        suite_from(root, evals="painting", classes=None)


def test_found_where_the_card_says(tree, monkeypatch):
    where = cards.card("domainnet")["location"]
    monkeypatch.setitem(where, "env", "OODBENCH_TEST_DOMAINNET")
    monkeypatch.setenv("OODBENCH_TEST_DOMAINNET", str(tree / "domainnet"))
    assert suite_from(None).evals[0].name == "real"  # no --data-root: the card's variable alone finds it
    monkeypatch.delenv("OODBENCH_TEST_DOMAINNET")
    monkeypatch.setitem(where, "subdirs", ["elsewhere"])
    with pytest.raises(BenchmarkError, match=r"looked in: .*elsewhere\);.*\(containing elsewhere\) or set OODBENCH_TEST_DOMAINNET"):
        suite_from(tree)


def test_corrupt_image_fails_in_one_line(tmp_path):
    root = build_domainnet_tree(tmp_path, test_per_class=1)
    victim = sorted(listed(root, "clipart", "test"))[0]
    Path(victim).write_bytes(b"garbage")
    clipart = suite_from(root).evals[-1]
    with pytest.raises(BenchmarkError, match=f"cannot read image {victim}"):
        clipart.dataset[[p for p, _ in clipart.dataset.samples].index(victim)]


def test_prepare_reports_ok_and_names_problems(tmp_path, monkeypatch):
    labels = range(len(domainnet.classes()))
    root = build_domainnet_tree(tmp_path, labels=labels, train_per_class=1, test_per_class=1,
                                domains=("real", "sketch", "painting", "infograph", "clipart"))  # fmt: skip
    counts = cards.card("domainnet")["counts"]
    for key in counts:
        monkeypatch.setitem(counts, key, 345)
    report = domainnet.prepare(root, progress=False)
    assert report.ok, report.text
    assert "ok  DomainNet real_train: 345 images (card: 345), every image decodes" in report.text
    assert "optional (only for evals=...,quickdraw)" in report.text  # quickdraw absent: reported, not fatal
    victim = sorted(listed(root, "painting", "test"))[3]
    Path(victim).write_bytes(b"\xff\xd8 truncated")
    report = domainnet.prepare(root, progress=False)
    assert not report.ok and f"1 unreadable images in DomainNet painting_test, e.g. {victim}" in report.text
