"""Suites from your own data (suite cards, benchmark/data/custom.py): folder and Hugging Face sets, labels matched
by class name, subset maps, CLIP templates, and a card run end to end through the CLI."""
import io
import json
from pathlib import Path

import datasets
import numpy as np
import pytest
import pyarrow as pa
import torch
from PIL import Image

from benchmark.__main__ import main
from benchmark.data import RECIPE_KEYS, SGD_KEYS, SUITES, SuiteOptions, build_suite, resolve_suite
from benchmark.data.base import IDENTITY, SubsetLabelMap
from benchmark.data.custom import RECIPE, RECIPE_TYPES
from benchmark.errors import BenchmarkError
from benchmark.models import create_backbone
from benchmark.models.clip import ClipText, head_cache_path, open_clip, set_zero_shot_head
from benchmark.report import records
from method_smoke import BACKBONE as TINY_CNN
from tests.clip_ctx import TINY_CLIP

ROOT = Path(__file__).resolve().parents[1]
COLOURS = {"a": (230, 20, 20), "b": (20, 230, 20), "c": (20, 20, 230)}  # a class is its image's colour
TINY_RECIPE = "[recipe]\nepochs = 1\nbatch_size = 8\neval_batch_size = 16\n"


@pytest.fixture(autouse=True)
def _cards_registered_for_one_test(monkeypatch):
    """The suite registry is global: the suites a test registers from cards are forgotten after it."""
    SUITES.load()
    for attr in ("_items", "_descriptions", "_modules", "cards"):
        monkeypatch.setattr(SUITES, attr, dict(getattr(SUITES, attr)))


def picture(cls: str) -> Image.Image:
    return Image.new("RGB", (12, 12), COLOURS.get(cls, (128, 128, 128)))


def colour_class(image) -> str:
    """The class an image was drawn as (its dominant channel)."""
    return "abc"[int(np.asarray(image).reshape(-1, 3).mean(0).argmax())]


def write_tree(root: Path, folders: dict[str, str], n: int = 4, ext: str = "png") -> Path:
    """root/<folder>/<i>.<ext>, each folder's images drawn as the class it maps to."""
    for folder, cls in folders.items():
        (root / folder).mkdir(parents=True)
        for i in range(n):
            picture(cls).save(root / folder / f"{i}.{ext}")
    return root


def hf_dataset(names: list[str], true: list[str], image_column="image", label_column="label") -> datasets.Dataset:
    """Rows drawn as the classes in `true`, labelled through a ClassLabel with `names` in the given order."""
    def png(cls):
        buffer = io.BytesIO()
        picture(cls).save(buffer, "PNG")
        return {"bytes": buffer.getvalue(), "path": None}

    data = datasets.Dataset.from_dict({image_column: [png(c) for c in true], label_column: [names.index(c) for c in true]})
    return data.cast_column(image_column, datasets.Image()).cast_column(label_column, datasets.ClassLabel(names=names))


def write_card(folder: Path, name: str, body: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(f'name = "{name}"\nbackbone = "{TINY_CNN}"\nimage_size = 16\n{body}')
    return path


def data_tree(root: Path, ood: dict[str, str] | None = None) -> None:
    """ID train (6 a class) and test (3 a class) over a, b, c, and an OOD set (default: the same classes)."""
    identity = {c: c for c in COLOURS}
    write_tree(root / "train", identity, n=6)
    write_tree(root / "test", identity, n=3, ext="jpg")
    write_tree(root / "sketch", ood or identity, n=3)


def build(card: Path, **sizes):
    def array(image):
        return np.asarray(image)

    return build_suite(resolve_suite(str(card)), SuiteOptions(None, array, array, sizes=sizes))


def cli(*argv) -> int:
    return main([*map(str, argv)])


def test_folder_card_runs_ft_end_to_end_and_its_leaderboard_renders(tmp_path, capsys):
    data_tree(tmp_path / "data")
    card = write_card(tmp_path, "card-e2e", f'[train]\nfolder = "data/train"\n[test]\nfolder = "data/test"\n'
                                            f'[ood.sketch]\nfolder = "data/sketch"\n{TINY_RECIPE}')  # fmt: skip
    results = tmp_path / "results"
    assert cli("run", "--suite", card, "--dry-run", "--method", "ft", "--results", results) == 0
    (planned,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert planned["suite"] == "card-e2e" and Path(planned["record"]).parent == results / "runs" / "card-e2e"
    assert cli("run", "--suite", card, "--method", "ft", "--results", results, "--no-progress", "--workers", 1) == 0
    (path,) = (results / "runs" / "card-e2e").glob("ft-*.json")
    record = records.read_record(path)
    assert records.problem_of(record, path) is None and record["config"]["suite"] == "card-e2e"
    assert {(r["eval"], r["role"]) for r in record["evals"]} == {("selection", "selection"), ("test", "id"), ("sketch", "ood")}
    capsys.readouterr()
    for suite in (card, "card-e2e"):  # the card's path or its name
        assert cli("leaderboard", "--suite", suite, "--results", results) == 0
    assert "ft" in capsys.readouterr().out and "ft" in (results / "card-e2e.md").read_text()
    assert cli("list") == 0 and "card-e2e" in capsys.readouterr().out


def test_labels_follow_the_class_folders_and_selection_is_a_seeded_disjoint_slice(tmp_path):
    data_tree(tmp_path / "data")
    card = write_card(tmp_path, "card-split", 'classes = ["c", "a", "b"]\nselection_fraction = 0.25\n'
                                              '[train]\nfolder = "data/train"\n[test]\nfolder = "data/test"\n'
                                              '[ood.sketch]\nfolder = "data/sketch"\n')  # fmt: skip
    suite = build(card)
    assert suite.classnames == ["c", "a", "b"] and len(suite.train) == 14 and len(suite.selection) == 4
    assert not {p for p, _ in suite.train.samples} & {p for p, _ in suite.selection.samples}
    for dataset in (suite.train, suite.selection, *(e.dataset for e in suite.evals)):
        assert all(suite.classnames[label] == colour_class(image) for image, label in dataset)
    assert build(card).fingerprint == suite.fingerprint
    assert len(build(card, selection_fraction=0.5).selection) == 9  # a size option, as --size gives it


def test_mismatched_class_folders_are_a_one_line_error(tmp_path, capsys):
    data_tree(tmp_path / "data", ood={"a": "a", "b": "b", "x": "c"})
    card = write_card(tmp_path, "card-mismatch", '[train]\nfolder = "data/train"\n[test]\nfolder = "data/test"\n'
                                                 '[ood.sketch]\nfolder = "data/sketch"\n')  # fmt: skip
    assert cli("run", "--suite", card, "--method", "ft", "--results", tmp_path / "r", "--no-progress") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: card-mismatch [ood.sketch]: its classes do not match")
    assert "1 missing (c)" in err and "1 extra (x)" in err and "give [ood.sketch] a subset" in err


def test_a_subset_map_scores_an_ood_set_on_its_classes_logits(tmp_path):
    data_tree(tmp_path / "data", ood={"kitty": "c", "doggo": "a"})
    write_tree(tmp_path / "data" / "cartoon", {"a": "a", "b": "b"}, n=2)
    body = ('[train]\nfolder = "data/train"\n[test]\nfolder = "data/test"\n[ood.sketch]\nfolder = "data/sketch"\n'
            'subset = { kitty = "c", doggo = "a" }\n[ood.cartoon]\nfolder = "data/cartoon"\nsubset = ["a", "b"]\n')
    card = write_card(tmp_path, "card-subset", body)
    suite = build(card)
    test, sketch, cartoon = suite.evals
    assert test.label_map is IDENTITY and isinstance(sketch.label_map, SubsetLabelMap)
    assert sketch.label_map(torch.tensor([[10.0, 11.0, 12.0]])).tolist() == [[12.0, 10.0]]  # kitty -> c, doggo -> a
    assert cartoon.label_map(torch.tensor([[10.0, 11.0, 12.0]])).tolist() == [[10.0, 11.0]]
    assert all(["c", "a"][label] == colour_class(image) for image, label in sketch.dataset)
    card.write_text(card.read_text().replace('kitty = "c", doggo = "a"', 'kitty = "a", doggo = "c"'))  # edited
    remapped = build(card)
    assert remapped.evals[1].label_map.indices.tolist() == [0, 2]
    assert remapped.fingerprint != suite.fingerprint  # the map is part of what a record was made from


def test_hugging_face_labels_are_mapped_by_class_name(tmp_path):
    true = ["a", "b", "c", "c", "a", "b", "a", "c"]
    hf_dataset(["c", "a", "b"], true).save_to_disk(str(tmp_path / "hf_test"))  # ClassLabel order != the suite's
    datasets.DatasetDict({"train": hf_dataset(["b", "c", "a"], true * 2, "img", "animal")}).save_to_disk(str(tmp_path / "hf_dict"))
    write_tree(tmp_path / "train", {c: c for c in COLOURS})
    card = write_card(tmp_path, "card-hf", '[train]\nfolder = "train"\n[test]\nfrom_disk = "hf_test"\n'
                                           '[ood.web]\nfrom_disk = "hf_dict"\nsplit = "train"\nimage_column = "img"\nlabel_column = "animal"\n')  # fmt: skip
    suite = build(card)
    assert suite.classnames == ["a", "b", "c"]
    for evalset in suite.evals:
        labels = [label for _, label in evalset.dataset]
        assert labels == [suite.classnames.index(c) for c in true * (len(evalset.dataset) // len(true))]
        assert all(suite.classnames[label] == colour_class(image) for image, label in evalset.dataset)
    assert build(card).fingerprint == suite.fingerprint


def test_hugging_face_train_set_gives_the_label_order(tmp_path):
    hf_dataset(["b", "c", "a"], ["a", "b", "c"] * 4).save_to_disk(str(tmp_path / "hf_train"))
    write_tree(tmp_path / "test", {c: c for c in COLOURS}, n=2)
    card = write_card(tmp_path, "card-hf-train", '[train]\nfrom_disk = "hf_train"\n[test]\nfolder = "test"\n')
    suite = build(card)
    assert suite.classnames == ["b", "c", "a"] and len(suite.train) + len(suite.selection) == 12
    assert all(suite.classnames[label] == colour_class(image) for image, label in suite.train)


def fake_hub_cache(cache: Path, repo_id: str, split: str, data: datasets.Dataset) -> None:
    """A dataset as the local Hub cache holds one once loaded (what load_dataset reads offline)."""
    folder = cache / repo_id.replace("/", "___") / "default" / "0.0.0" / "0123abcd"
    folder.mkdir(parents=True)
    name = repo_id.split("/")[-1]
    with pa.OSFile(str(folder / f"{name}-{split}.arrow"), "wb") as sink:
        with pa.ipc.new_stream(sink, data.data.table.schema) as writer:
            writer.write_table(data.data.table)
    datasets.DatasetInfo(features=data.features, config_name="default", dataset_name=name,
                         splits=datasets.SplitDict({split: datasets.SplitInfo(split, num_examples=len(data), dataset_name=name)}),
                         ).write_to_directory(str(folder))  # fmt: skip


def test_a_hub_dataset_is_read_from_the_local_cache_offline(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hub"))
    true = ["c", "a", "b", "b"]
    fake_hub_cache(tmp_path / "hub", "someone/tiny-pets", "validation", hf_dataset(["b", "a", "c"], true))
    write_tree(tmp_path / "train", {c: c for c in COLOURS})
    body = '[train]\nfolder = "train"\n[test]\nhub = "someone/tiny-pets"\nsplit = "validation"\n'
    suite = build(write_card(tmp_path, "card-hub", body))
    assert [label for _, label in suite.evals[0].dataset] == [2, 0, 1, 1]
    card = write_card(tmp_path, "card-hub-missing", body.replace("someone/tiny-pets", "someone/not-cached"))
    capsys.readouterr()
    assert cli("run", "--suite", card, "--method", "ft", "--results", tmp_path / "r", "--no-progress") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot load Hugging Face dataset someone/not-cached" in err and "HF_HUB_OFFLINE is set" in err


def test_a_hugging_face_class_missing_from_the_suite_is_a_one_line_error(tmp_path, capsys):
    hf_dataset(["a", "zebra", "b", "c"], ["a", "zebra", "b", "c"]).save_to_disk(str(tmp_path / "hf_ood"))
    write_tree(tmp_path / "train", {c: c for c in COLOURS})
    write_tree(tmp_path / "test", {c: c for c in COLOURS}, n=2)
    card = write_card(tmp_path, "card-zebra", '[train]\nfolder = "train"\n[test]\nfolder = "test"\n[ood.zoo]\nfrom_disk = "hf_ood"\n')
    capsys.readouterr()
    assert cli("run", "--suite", card, "--method", "ft", "--results", tmp_path / "r", "--no-progress") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "card-zebra [ood.zoo]: its classes do not match the suite's: 1 extra (zebra)" in err


def test_templates_reach_the_zero_shot_head_and_its_cache_key():
    torch.manual_seed(0)
    mine = ("a photo of a {}.", "a sketch of a {}.")
    built = create_backbone(TINY_CLIP, ["cat", "dog", "car"], 32, templates=mine)
    text = built.extras["text"]
    assert [t("{}") for t in text.templates] == list(mine) and text.templates[1]("dog") == "a sketch of a dog."
    head = built.model.head.weight.detach().clone()
    set_zero_shot_head(built.model, text)
    assert torch.allclose(built.model.head.weight, head)
    default = ClipText(text.tokenizer, tuple(open_clip().OPENAI_IMAGENET_TEMPLATES), text.classnames)
    set_zero_shot_head(built.model, default)
    assert not torch.allclose(built.model.head.weight, head)
    assert head_cache_path("ViT-B-32", "openai", text) != head_cache_path("ViT-B-32", "openai", default)


def test_a_cards_templates_file_reaches_the_backbone_of_a_run(tmp_path, monkeypatch):
    import benchmark.harness.run as harness

    data_tree(tmp_path / "data")
    (tmp_path / "prompts.txt").write_text("a photo of a {}.\n\nart of a {}.\n")
    sets = '[train]\nfolder = "data/train"\n[test]\nfolder = "data/test"\n[ood.sketch]\nfolder = "data/sketch"\n'
    card = write_card(tmp_path, "card-clip", f'templates = "prompts.txt"\nclassnames = {{ a = "apple" }}\n{sets}')
    seen = []

    def spy(*args):
        seen.append(args)
        return create_backbone(*args)

    monkeypatch.setattr(harness, "create_backbone", spy)
    assert cli("run", "--suite", card, "--method", "zeroshot", "--backbone", TINY_CLIP, "--results", tmp_path / "r",
               "--no-progress", "--workers", 1) == 0  # fmt: skip
    (args,) = seen
    assert args[1] == ["apple", "b", "c"] and args[4] == ("a photo of a {}.", "art of a {}.")
    plain = build(write_card(tmp_path, "card-clip-plain", f'classnames = {{ a = "apple" }}\n{sets}'))
    assert build(card).fingerprint != plain.fingerprint  # the prompts decide what a zero-shot head scores


def test_the_generic_recipe_is_complete_and_a_card_replaces_single_keys(tmp_path):
    assert set(RECIPE) == set(RECIPE_KEYS) and set(RECIPE_TYPES) == set(RECIPE_KEYS + SGD_KEYS)
    sets = '[train]\nfolder = "t"\n[test]\nfolder = "t"\n'
    assert SUITES.get(resolve_suite(str(write_card(tmp_path, "card-recipe", sets)))).recipe == RECIPE
    card = write_card(tmp_path, "card-recipe", sets + "[recipe]\nlr = 1\nepochs = 2\n")  # the same card, edited
    assert SUITES.get(resolve_suite(str(card))).recipe == {**RECIPE, "lr": 1.0, "epochs": 2}
    sgd = write_card(tmp_path, "card-sgd", sets + '[recipe]\noptimizer = "sgd"\nmomentum = 0.9\nnesterov = true\n')
    assert SUITES.get(resolve_suite(str(sgd))).recipe["momentum"] == 0.9


def test_the_example_card_plans_without_its_data(tmp_path, capsys):
    card = ROOT / "datasets" / "examples" / "my_suite.toml"
    assert cli("run", "--suite", card, "--dry-run", "--results", tmp_path) == 0
    plans = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [p["method"] for p in plans] == ["lp", "ft", "lp-ft", "wise-ft"] and {p["suite"] for p in plans} == {"my-suite"}
    assert all(Path(p["record"]).parent == tmp_path / "runs" / "my-suite" for p in plans)


SETS = '[train]\nfolder = "t"\n[test]\nfolder = "t"\n'


@pytest.mark.parametrize("body, message", [
    ("trian = 1\n" + SETS, r"unknown key\(s\) trian; valid: name, "),
    ('[train]\nfolder = "t"\n', r"test is missing"),
    ('[train]\nfolder = "t"\nhub = "a/b"\n[test]\nfolder = "t"\n', r"\[train\]: give exactly one of folder, from_disk, hub"),
    ('[train]\nfolder = "t"\nsubset = ["a"]\n[test]\nfolder = "t"\n', r"\[train\]: unknown key\(s\) subset"),
    ('[train]\nfolder = "t"\nsplit = "x"\n[test]\nfolder = "t"\n', r"\[train\]: unknown key\(s\) split"),
    (SETS + '[ood.test]\nfolder = "t"\n', r"an OOD set may not be called 'test'"),
    (SETS + '[ood.x]\nfolder = "t"\nsubset = { p = "a", q = "a" }\n', r"subset maps several classes onto a"),
    ('templates = ["a photo"]\n' + SETS, r"templates need '\{\}' where the class name goes.*; not 'a photo'"),
    ('templates = "nope.txt"\n' + SETS, r"cannot read templates file .*nope\.txt"),
    ('classes = ["a", "a"]\n' + SETS, r"classes names a more than once"),
    ("split_seed = true\n" + SETS, r"split_seed = True is not a whole number"),
    ('selection_fraction = "big"\n' + SETS, r"selection_fraction = 'big' is not a number"),
    ("selection_fraction = 1\n" + SETS, r"selection_fraction = 1.0 is not a fraction between 0 and 1"),
    (SETS + '[recipe]\nlr = "fast"\n', r"\[recipe\]: lr = 'fast' is not a number"),
    (SETS + '[recipe]\noptimizer = "sgd"\n', r"\[recipe\]: optimizer sgd needs momentum and nesterov too"),
    (SETS + '[recipe]\nmomentum = 0.9\n', r"\[recipe\]: momentum apply to optimizer sgd only"),
    (SETS + '[recipe]\nlearning_rate = 0.1\n', r"\[recipe\]: unknown key\(s\) learning_rate"),
])  # fmt: skip
def test_card_mistakes_are_one_line_errors(tmp_path, body, message):
    with pytest.raises(BenchmarkError, match=message) as e:
        resolve_suite(str(write_card(tmp_path, "card-bad", body)))
    assert "\n" not in str(e.value)


def test_card_names_and_files(tmp_path):
    for name, message in (("my suite", "must be usable as a folder name"), ("fmnist-c", "taken by a built-in suite")):
        (tmp_path / "c.toml").write_text(f'name = "{name}"\n{SETS}')
        with pytest.raises(BenchmarkError, match=message):
            resolve_suite(str(tmp_path / "c.toml"))
    with pytest.raises(BenchmarkError, match=r"suite card .*none\.toml not found"):
        resolve_suite(str(tmp_path / "none.toml"))
    (tmp_path / "broken.toml").write_text("name = \n")
    with pytest.raises(BenchmarkError, match=r"broken\.toml is unreadable"):
        resolve_suite(str(tmp_path / "broken.toml"))
    assert resolve_suite("fmnist-c") == "fmnist-c"
