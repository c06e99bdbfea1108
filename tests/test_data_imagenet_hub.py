"""ImageNet-V2/-A/-R/-Sketch from Hugging Face copies, built here as tiny Arrow datasets in the layouts the
cards record (save_to_disk folders, and one in the local Hub cache read offline): labels land on the right
class whichever way a copy names them, the folder path still wins, and a copy whose labels do not map is a
one-line error."""
import shutil
from pathlib import Path

import datasets
import numpy as np
import pytest
from datasets import ClassLabel, Features, Image, Value
from PIL import Image as PILImage

from benchmark.__main__ import main
from benchmark.data import cards, imagenet
from benchmark.data.imagenet import HubImageDataset
from benchmark.errors import BenchmarkError
from fixtures_cls import IMAGENET_FIXTURE_INDICES, OUTSIDER, OracleModel, build_imagenet_tree, colour, fixture_suite, score

PER_CLASS = 2
V2_PREFIX = "imagenetv2-matched-frequency-format-val/"
datasets.disable_progress_bars()


def picture(index: int) -> PILImage.Image:
    """A flat image encoding ImageNet class `index` (as fixtures_cls.write_image; stored as PNG, lossless)."""
    return PILImage.fromarray(np.full((8, 8, 3), colour(index), dtype=np.uint8))


def wnid(index: int) -> str:
    return imagenet.imagenet_wnids()[index]


def fixture_rows(subset=None) -> list[int]:
    """PER_CLASS rows per fixture class (those in `subset`, a set of wnids, if given), as ImageNet indices."""
    return [i for i in IMAGENET_FIXTURE_INDICES if subset is None or wnid(i) in subset for _ in range(PER_CLASS)]


def save(folder, columns: dict, features: dict) -> None:
    datasets.Dataset.from_dict(columns, features=Features(features)).save_to_disk(str(folder))


def a_copy(folder, indices=None) -> None:
    """barkermrl/imagenet-a: image + label, a ClassLabel named by wnids (listed backwards here, so only a
    mapping by name, never by position, puts them right)."""
    names = list(reversed(imagenet.subset_wnids("a")))
    indices = fixture_rows(set(imagenet.subset_wnids("a"))) if indices is None else indices
    save(folder, {"image": [picture(i) for i in indices], "label": [names.index(wnid(i)) for i in indices]},
         {"image": Image(), "label": ClassLabel(names=names)})  # fmt: skip


def r_columns(indices: list[int]) -> dict:
    """axiong/imagenet-r: image, wnid and class_name columns."""
    return {"image": [picture(i) for i in indices], "wnid": [wnid(i) for i in indices],
            "class_name": [imagenet.imagenet_lemmas()[i] for i in indices]}  # fmt: skip


R_FEATURES = {"image": Image(), "wnid": Value("string"), "class_name": Value("string")}


def sketch_names() -> list[str]:
    """The ILSVRC lemmas in index order, as the imagenet_sketch script names its ClassLabel; a ClassLabel must
    have unique names, so a real copy names one of the two 'crane' classes otherwise."""
    names = list(imagenet.imagenet_lemmas())
    names[names.index("crane", names.index("crane") + 1)] = "crane (machine)"
    return names


def sketch_copy(folder) -> None:
    indices = fixture_rows()
    save(folder, {"image": [picture(i) for i in indices], "label": indices},
         {"image": Image(), "label": ClassLabel(names=sketch_names())})  # fmt: skip


def v2_copy(folder) -> None:
    """vaishaal/ImageNetV2 read as a WebDataset: the three sets of the repository in one split; the keys of
    the two others carry another class's image, so keeping one of their rows shows as a wrong label."""
    keys, images = [], []
    for k, i in enumerate(fixture_rows()):
        keys += [f"{V2_PREFIX}{i}/{k:040x}", f"imagenetv2-threshold0.7-format-val/{i}/{k:040x}"]
        images += [picture(i), picture(OUTSIDER if i != OUTSIDER else 1)]
    save(folder, {"jpeg": images, "__key__": keys, "__url__": ["imagenetv2.tar.gz"] * len(keys)},
         {"jpeg": Image(), "__key__": Value("string"), "__url__": Value("string")})  # fmt: skip


@pytest.fixture(scope="module")
def hub_root(tmp_path_factory):
    """ImageNet itself as folders, its four OOD sets as Hugging Face copies where their folders would be."""
    root = build_imagenet_tree(tmp_path_factory.mktemp("hub"), variants=("imagenet",))
    v2_copy(root / "imagenet-v2")
    a_copy(root / "imagenet-a")
    save(root / "imagenet-r", r_columns(fixture_rows(set(imagenet.subset_wnids("r")))), R_FEATURES)
    sketch_copy(root / "sketch")
    return root


def suite_from(root, **sizes):
    return fixture_suite("imagenet", root, **{"evals": "v2,a,r,sketch", **sizes})


def test_every_copy_lands_on_the_right_classes(hub_root):
    suite = suite_from(hub_root)
    ood = [e for e in suite.evals if e.role == "ood"]
    assert [e.name for e in ood] == ["imagenet-v2", "imagenet-a", "imagenet-r", "imagenet-sketch"]
    assert all(isinstance(e.dataset, HubImageDataset) for e in ood)
    assert {e.name: len(e.dataset) for e in ood} == {"imagenet-v2": 18, "imagenet-a": 8, "imagenet-r": 12,
                                                     "imagenet-sketch": 18}  # V2's other sets dropped
    assert {e.name: score(OracleModel(IMAGENET_FIXTURE_INDICES), e) for e in ood} == {e.name: 1.0 for e in ood}
    # A and R keep their 200-class subset maps: the distractor logit outside them never wins there.
    distracted = {e.name: score(OracleModel(IMAGENET_FIXTURE_INDICES, distractor=OUTSIDER), e) for e in ood}
    assert distracted == {"imagenet-v2": pytest.approx(1 / 9), "imagenet-a": 1.0, "imagenet-r": 1.0,
                          "imagenet-sketch": pytest.approx(1 / 9)}  # fmt: skip


def test_rows_outside_the_label_space_are_left_out(hub_root):
    suite = suite_from(hub_root, wnids=",".join(wnid(i) for i in (6, 954)), evals="a,sketch")
    a, sketch = suite.evals[1:]
    assert len(a.dataset) == len(sketch.dataset) == 2 * PER_CLASS
    assert a.label_map.describe() == "subset of 2 logits"
    assert score(OracleModel((6, 954)), a) == score(OracleModel((6, 954)), sketch) == 1.0


def test_fingerprint_follows_the_copy(hub_root, tmp_path):
    first = suite_from(hub_root, evals="a").fingerprint
    moved = tmp_path / "moved"
    shutil.copytree(hub_root, moved)
    assert suite_from(moved, evals="a").fingerprint == first  # copying the data keeps it
    shutil.rmtree(moved / "imagenet-a")
    a_copy(moved / "imagenet-a", fixture_rows(set(imagenet.subset_wnids("a"))) + [954])
    assert suite_from(moved, evals="a").fingerprint != first


def test_the_image_folder_still_wins(hub_root, tmp_path, monkeypatch):
    root = tmp_path / "root"
    shutil.copytree(hub_root, root, ignore=shutil.ignore_patterns("imagenet-a"))
    build_imagenet_tree(root, variants=("a",))
    monkeypatch.setenv(cards.card("imagenet-a")["hub"]["env"], "nobody/nothing")  # never opened
    a = suite_from(root, evals="a").evals[1]
    assert not isinstance(a.dataset, HubImageDataset) and score(OracleModel(IMAGENET_FIXTURE_INDICES), a) == 1.0


def test_v2_class_folders_saved_as_a_classlabel_are_read_by_value(hub_root, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(hub_root, root, ignore=shutil.ignore_patterns("imagenet-v2"))
    names = sorted(str(i) for i in range(1000))  # an image folder of the archive: '1' < '10' < '100' < '2'
    indices = fixture_rows()
    save(root / "imagenet-v2", {"image": [picture(i) for i in indices], "label": [names.index(str(i)) for i in indices]},
         {"image": Image(), "label": ClassLabel(names=names)})  # fmt: skip
    assert score(OracleModel(IMAGENET_FIXTURE_INDICES), suite_from(root, evals="v2").evals[1]) == 1.0


def cache_on_hub(data: datasets.Dataset, repo: str, config: str, split: str, cache, work) -> None:
    """Put `data` into the local datasets cache as load_dataset(repo) leaves it (<owner>___<name>/<config>/
    <version>/<hash>/<name>-<split>.arrow), so that an offline load_dataset(repo) finds it."""
    from datasets.packaged_modules.parquet.parquet import Parquet

    data.to_parquet(str(work / "data.parquet"))
    owner, name = repo.split("/")
    builder = Parquet(cache_dir=str(work / "built"), dataset_name=name, config_name=config, hash="0" * 16,
                      data_files={split: str(work / "data.parquet")})  # fmt: skip
    builder.download_and_prepare()
    target = cache / f"{owner}___{name}" / config
    target.mkdir(parents=True)
    shutil.move(str(Path(builder.cache_dir).parent), str(target / "0.0.0"))


def test_a_hub_id_is_read_offline_from_the_local_cache(hub_root, tmp_path, monkeypatch):
    assert datasets.config.HF_HUB_OFFLINE  # conftest: nothing here may reach the Hub
    root = tmp_path / "root"
    shutil.copytree(hub_root, root, ignore=shutil.ignore_patterns("imagenet-r"))
    hub = cards.card("imagenet-r")["hub"]
    cache = tmp_path / "hf-datasets"
    rows = datasets.Dataset.from_dict(r_columns(fixture_rows(set(imagenet.subset_wnids("r")))), features=Features(R_FEATURES))
    cache_on_hub(rows, hub["id"], "test", hub["split"], cache, tmp_path)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    with pytest.raises(BenchmarkError, match="ImageNet-R not found .*IMAGENET_R_HF=axiong/imagenet-r"):
        suite_from(root, evals="r")
    monkeypatch.setenv(hub["env"], hub["id"])
    r = suite_from(root, evals="r").evals[1]
    assert isinstance(r.dataset, HubImageDataset) and len(r.dataset) == 12
    assert score(OracleModel(IMAGENET_FIXTURE_INDICES, distractor=OUTSIDER), r) == 1.0
    monkeypatch.setenv(hub["env"], "nobody/nothing")
    with pytest.raises(BenchmarkError, match=r"^cannot open the Hugging Face copy of ImageNet-R \(nobody/nothing\): "
                                             r".*nobody/nothing.*Offline") as e:  # fmt: skip
        suite_from(root, evals="r")
    assert "\n" not in str(e.value)


def bad_a_copies():
    a = set(imagenet.subset_wnids("a"))
    rows = fixture_rows(a)
    lemmas = imagenet.imagenet_lemmas()
    a_names = list(imagenet.subset_wnids("a"))
    human = [lemmas[imagenet.imagenet_wnids().index(w)] for w in imagenet.subset_wnids("a")]
    return {
        "names that are no class ids": (
            {"image": [picture(i) for i in rows], "label": [human.index(lemmas[i]) for i in rows]},
            {"image": Image(), "label": ClassLabel(names=human)}, r"ClassLabel names .* cannot be mapped"),
        "no label column": (
            {"image": [picture(i) for i in rows + [OUTSIDER]], "wnid": [wnid(i) for i in rows + [OUTSIDER]]},
            {"image": Image(), "wnid": Value("string")}, "has none of the label columns"),
        "bare numbers": (
            {"image": [picture(i) for i in rows], "label": [imagenet.subset_wnids("a").index(wnid(i)) for i in rows]},
            {"image": Image(), "label": Value("int64")}, r"label column 'label' holds .* which classes its values mean"),
        "a class with no images": (
            {"image": [picture(i) for i in rows if i != 954], "label": [wnid(i) for i in rows if i != 954]},
            {"image": Image(), "label": Value("string")}, f"is partial: 1 of 4 classes have no images .*{wnid(954)}"),
        "a wnid not of ImageNet-A": (
            {"image": [picture(i) for i in rows + [OUTSIDER]], "label": [wnid(i) for i in rows + [OUTSIDER]]},
            {"image": Image(), "label": Value("string")}, f"1 labels are not among its 200 classes .*{wnid(OUTSIDER)}"),
        "a row without a label": (
            {"image": [picture(i) for i in rows + [1]], "label": [a_names.index(wnid(i)) for i in rows] + [-1]},
            {"image": Image(), "label": ClassLabel(names=a_names)}, r"1 rows have no label \(-1 in 'label'\)"),
        "no image column": (
            {"label": [wnid(i) for i in rows]}, {"label": Value("string")}, "has 0 image columns"),
    }


@pytest.mark.parametrize("case", list(bad_a_copies()))
def test_a_copy_whose_labels_do_not_map_is_one_line(hub_root, tmp_path, case):
    columns, features, message = bad_a_copies()[case]
    root = tmp_path / "root"
    shutil.copytree(hub_root, root, ignore=shutil.ignore_patterns("imagenet-a"))
    save(root / "imagenet-a", columns, features)
    with pytest.raises(BenchmarkError, match=message) as e:
        suite_from(root, evals="a")
    assert "\n" not in str(e.value) and "ImageNet-A" in str(e.value)


def test_prepare_checks_a_copy_count_and_images(tmp_path, monkeypatch, capsys):
    every_r_class = [imagenet.imagenet_wnids().index(w) for w in imagenet.subset_wnids("r")]
    columns = r_columns(every_r_class)
    save(tmp_path / "imagenet-r", columns, R_FEATURES)
    monkeypatch.setitem(cards.card("imagenet-r")["counts"], "test", 200)
    assert main(["prepare", "imagenet-r", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "ok  ImageNet-R: 200 images (card: 200)  (the Hugging Face copy of ImageNet-R" in out
    assert "ok  ImageNet-R: every image decodes" in out
    monkeypatch.setitem(cards.card("imagenet-r")["counts"], "test", 30_000)
    report = imagenet.prepare_variant("r", tmp_path, progress=False)
    assert not report.ok and "ImageNet-R has 200 images, expected 30000" in report.text
    monkeypatch.setitem(cards.card("imagenet-r")["counts"], "test", 200)
    columns["image"][3] = {"bytes": b"\xff\xd8 truncated", "path": None}
    shutil.rmtree(tmp_path / "imagenet-r")
    save(tmp_path / "imagenet-r", columns, R_FEATURES)
    report = imagenet.prepare_variant("r", tmp_path, progress=False)
    assert not report.ok and "1 unreadable images in ImageNet-R, e.g. row 3: cannot read image 3" in report.text
