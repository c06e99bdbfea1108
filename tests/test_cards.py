"""The dataset cards are the one copy of each dataset's facts: every card parses and names itself, its
found_via prose says what its [location] table makes the code do, the adapters keep no copy of the facts,
locations are tried in the card's order, and a missing or broken card fails in one line."""
import re
from pathlib import Path

import numpy as np
import pytest

from benchmark.__main__ import main
from benchmark.data import DATASETS, cards, fmnist
from benchmark.errors import BenchmarkError
from test_errors import write_idx

ROOT = Path(__file__).resolve().parents[1]
NAMES = sorted(p.stem for p in (ROOT / "datasets").glob("*.toml"))
# Every card of a dataset read from disk says where it is looked for; segproxy is built from Fashion-MNIST and
# digits reads the copy inside scikit-learn.
LOCATED = [n for n in NAMES if n not in ("segproxy", "digits")]


def test_every_card_parses_and_names_itself():
    for name in NAMES:
        card = cards.card(name)
        assert card["name"] == name and card["title"]
        assert all(isinstance(n, int) and n > 0 for n in card.get("counts", {}).values() if not isinstance(n, str))
    assert "location" not in cards.card("segproxy")


@pytest.mark.parametrize("name", LOCATED)
def test_found_via_says_in_words_where_the_code_looks(name):
    where = cards.location(name)
    places = ["--data-root" if s == "." else f"--data-root/{s}" for s in where.subdirs]
    places += [f"${where.env_var}", *where.fallbacks]
    assert [entry.split(" (")[0] for entry in cards.card(name)["found_via"]] == places
    assert "." not in where.subdirs or where.data_root, "say in words what --data-root is when it can be the data itself"


def test_adapters_keep_no_copy_of_card_facts():
    source = "\n".join(p.read_text() for p in (ROOT / "benchmark" / "data").glob("*.py"))
    for name in LOCATED:
        assert cards.location(name).env_var not in source, name
        for n in cards.card(name)["counts"].values():
            if isinstance(n, int) and n >= 1000:
                assert not re.search(rf"\b({n}|{n:_})\b", source), (name, n)


def test_location_tries_subfolders_then_variable_then_fallbacks(tmp_path, monkeypatch):
    where = cards.card("domainnet")["location"]
    monkeypatch.setitem(where, "subdirs", [".", "sub"])
    monkeypatch.setitem(where, "env", "OODBENCH_TEST_DIR")
    monkeypatch.setitem(where, "fallbacks", ["~/installed"])
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OODBENCH_TEST_DIR", str(tmp_path / "env"))
    root = tmp_path / "root"
    location = cards.location("domainnet")
    assert location.candidates(root) == [root, root / "sub", tmp_path / "env", tmp_path / "home" / "installed"]

    def marked(d):
        return (d / "marker").is_file()

    env = tmp_path / "env"
    for found in reversed(location.candidates(root)):  # each place, once marked, wins over the ones after it
        found.mkdir(parents=True, exist_ok=True)
        (found / "marker").touch()
        with monkeypatch.context() as m:
            if not marked(env):  # a variable naming a folder without the data is an error, not skipped
                m.delenv("OODBENCH_TEST_DIR")
            assert location.find(root, marked) == found
    (env / "marker").unlink()
    with pytest.raises(BenchmarkError, match=r"^\$OODBENCH_TEST_DIR is .*/env, which does not hold DomainNet; fix or unset it$"):
        location.find(tmp_path / "elsewhere", marked)  # the marked fallback is not used instead
    monkeypatch.delenv("OODBENCH_TEST_DIR")
    monkeypatch.setitem(where, "subdirs", ["sub"])
    monkeypatch.setitem(where, "fallbacks", [])
    with pytest.raises(BenchmarkError, match=r"^DomainNet not found \(looked in: nowhere \(no --data-root, no "
                                             r"\$OODBENCH_TEST_DIR\)\); download .*; then pass --data-root "
                                             r"\(containing sub\) or set OODBENCH_TEST_DIR$"):  # fmt: skip
        cards.location("domainnet").find(None)


def test_fashion_mnist_reads_counts_files_and_places_from_its_card(tmp_path, monkeypatch):
    for split, n in (("train", 5), ("t10k", 3)):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", np.zeros((n, 28, 28)))
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", np.full(n, 9))
    card = cards.card("fashion-mnist")
    monkeypatch.setitem(card["location"], "env", "OODBENCH_TEST_FMNIST")
    monkeypatch.setitem(card["location"], "fallbacks", [])
    monkeypatch.setenv("OODBENCH_TEST_FMNIST", str(tmp_path))
    files = fmnist.find(None)
    assert files["test_labels"] == tmp_path / "t10k-labels-idx1-ubyte.gz"
    with pytest.raises(BenchmarkError, match="expected 10000 of 28x28"):
        fmnist.load_split(files, "test")
    monkeypatch.setitem(card["counts"], "test", 3)
    assert fmnist.load_split(files, "test")[0].shape == (3, 28, 28)


def test_missing_or_broken_card_is_one_line(tmp_path, monkeypatch):
    with pytest.raises(BenchmarkError, match=r"datasets/no-such-set\.toml is missing"):
        cards.card("no-such-set")
    with pytest.raises(BenchmarkError, match=r"datasets/domainnet\.toml has no counts\.real_val"):
        cards.count("domainnet", "real_val")
    with pytest.raises(BenchmarkError, match=r"datasets/fashion-mnist\.toml: counts\.image is '28x28 grey', not a number"):
        cards.count("fashion-mnist", "image")
    (tmp_path / "broken.toml").write_text("name = \n")
    monkeypatch.setattr(cards, "shipped", lambda folder, file: tmp_path / file)
    with pytest.raises(BenchmarkError, match=r"broken\.toml is unreadable: ") as e:
        cards.card("broken")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("name", [n for n in DATASETS.names() if n in LOCATED])
def test_prepare_says_how_to_get_the_data_once_and_then_that_it_is_missing(name, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(cards.location(name).env_var, raising=False)
    monkeypatch.setitem(cards.card(name)["location"], "fallbacks", [])
    loc = cards.location(name)
    assert main(["prepare", name, "--data-root", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    assert out.count(loc.how_to_get) == 1 and f"missing: {loc.title} not found there" in out


def test_prepare_imagenet_says_each_thing_once(monkeypatch, capsys):
    location = cards.card("imagenet")["location"]
    monkeypatch.delenv(location["env"], raising=False)
    monkeypatch.setitem(location, "fallbacks", [])
    assert main(["prepare", "imagenet"]) == 2
    out = capsys.readouterr().out
    assert out.count("https://image-net.org/download-images") == 1 and "nowhere" not in out
    assert "Nowhere to look yet: no --data-root given and $IMAGENET_DIR is not set" in out
    assert out.splitlines()[-1] == "missing: ImageNet-1k not found"


def test_prepare_imagenet_names_the_folders_it_looked_in_once(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(cards.card("imagenet")["location"]["env"], raising=False)
    assert main(["prepare", "imagenet", "--data-root", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    assert out.count(str(tmp_path / "imagenet")) == 1 and out.count("https://image-net.org/download-images") == 1
    assert re.search(r"^missing: ImageNet-1k not found there$", out, re.M)
