"""ImageNet-1k (ID) and its natural distribution shifts (OOD): the ``imagenet`` suite.

Cards: datasets/imagenet.toml, imagenet-v2.toml, imagenet-a.toml, imagenet-r.toml, imagenet-sketch.toml,
objectnet.toml. Protocol:
- label space: the 1000 ILSVRC-2012 wnids in sorted order (torchvision ImageFolder's order), read from
  timm's data/_info/imagenet_synsets.txt; class names for zero-shot heads from open_clip;
- train = ImageNet train minus a seeded ``selection_per_class`` slice per class (the selection split,
  never a reported one); the reported ID set is ImageNet val;
- ImageNet-V2 folders are integer class indices (mapped by int, never sorted as strings);
- ImageNet-A / -R cover 200 wnids each (timm's imagenet_a/r_synsets.txt): SubsetLabelMap;
- ObjectNet: the 113 classes mapped to ImageNet by the release's mappings/ (datasets/objectnet/), logits
  max-pooled over each class's ImageNet classes, and the 2 px border cropped before the transform (as in
  wise-ft's ObjectNet loader).
- V2, A, R and Sketch may instead be a Hugging Face copy (the card's [hub]): a `save_to_disk` folder where the
  image folder would be, or a Hub id named by the card's variable (loaded with `datasets.load_dataset`, from
  the local cache when HF_HUB_OFFLINE=1). Its labels must name this universe's classes exactly: by WordNet
  id, by ImageNet class index, or by ClassLabel names that are either of those or the 1000 ILSVRC lemmas in
  index order; anything else is a one-line error.
A missing eval set is an error; ``--size evals=v2,a`` restricts the suite on purpose. ``--size wnids=...``
restricts the label space to some classes (cheap runs, tests): every eval set keeps only those classes,
and records carry the restriction in their sizes.
"""
from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from torch.utils.data import Dataset
from tqdm import tqdm

from benchmark.data import DATASETS, PrepareReport, SuiteOptions, register_suite
from benchmark.data.base import IDENTITY, EvalSet, LabelMap, MaxPoolLabelMap, Suite, SubsetLabelMap, disjoint_split
from benchmark.data.cards import Location, NotFound, card, count, location
from benchmark.data.folders import ImageListDataset, check_count, parse_choice, scan_classes, subsample, verify_images
from benchmark.errors import BenchmarkError
from benchmark.resources import shipped

DEFAULT_SIZES = {
    "evals": ("v2", "a", "r", "sketch", "objectnet"),  # which OOD sets to load (all by default)
    "selection_per_class": 10,  # train images per class held out as the selection split (10,000 in all)
    "train_per_class": None,    # cap on training images per class (None: all ~1281)
    "eval_max": None,           # cap on images per eval set, seeded subsample (None: all; for quick runs)
    "wnids": None,              # restrict the label space: comma-separated wnids or a file of them
    "split_seed": 0,            # fixed across run seeds: seeds vary training, not the data
}  # fmt: skip
OBJECTNET_BORDER = 2  # pixels cut from every side (wise-ft src/datasets/objectnet.py `crop`)


def _timm_file(name: str) -> Path:
    # Found without importing timm (it pulls in torch models); the files are timm's own class lists.
    root = importlib.util.find_spec("timm").submodule_search_locations[0]
    return Path(root) / "data" / "_info" / name


def _timm_info(name: str) -> list[str]:
    return _timm_file(name).read_text().split()


@functools.cache
def imagenet_wnids() -> tuple[str, ...]:
    wnids = tuple(_timm_info("imagenet_synsets.txt"))
    if len(wnids) != 1000 or list(wnids) != sorted(wnids):
        raise BenchmarkError("timm's imagenet_synsets.txt is not the 1000 sorted ILSVRC-2012 wnids; reinstall timm")
    return wnids


@functools.cache
def imagenet_lemmas() -> tuple[str, ...]:
    """The ILSVRC names of the 1000 classes in index order ('tench, Tinca tinca', ...), from timm's
    imagenet_synset_to_lemma.txt: what Hugging Face's ImageNet-family loaders name their ClassLabels."""
    lemma = dict(line.split("\t", 1) for line in _timm_file("imagenet_synset_to_lemma.txt").read_text().splitlines())
    return tuple(lemma[w] for w in imagenet_wnids())


@functools.cache
def subset_wnids(which: str) -> tuple[str, ...]:
    """The 200 wnids of ImageNet-A (which='a') or ImageNet-R ('r'), in ImageNet index order."""
    return tuple(_timm_info(f"imagenet_{which}_synsets.txt"))


@functools.cache
def objectnet_to_imagenet() -> dict[str, list[int]]:
    """ObjectNet folder -> ImageNet class indices, for the 113 ObjectNet classes that overlap ImageNet.

    Derived from the ObjectNet release's mappings/ files (stored verbatim in datasets/objectnet/), the same
    way the release and wise-ft do: ObjectNet label -> ImageNet names -> 2012 id -> PyTorch class index.
    """
    def load(name):
        return shipped("datasets", "objectnet", name)

    folder_of = {label: folder for folder, label in json.loads(load("folder_to_objectnet_label.json").read_text()).items()}
    to_names = json.loads(load("objectnet_to_imagenet_1k.json").read_text())
    index_of_id = {v: int(k) for k, v in json.loads(load("pytorch_to_imagenet_2012_id.json").read_text()).items()}
    names = [line.strip() for line in load("imagenet_to_label_2012_v2").read_text().splitlines()]
    index_of_name: dict[str, int | None] = {}
    for i, name in enumerate(names):
        index_of_name[name] = None if name in index_of_name else index_of_id[i]  # 'crane' names two classes
    mapping = {}
    for label, joined in to_names.items():
        indices = [index_of_name.get(n) for n in joined.split("; ")]
        if None in indices:
            raise BenchmarkError(f"ObjectNet mapping for {label!r} names an unknown or ambiguous ImageNet class")
        mapping[folder_of[label]] = sorted(indices)
    return dict(sorted(mapping.items()))


@functools.cache
def imagenet_classnames() -> tuple[str, ...]:
    # CLIP's curated names (the ones wise-ft / open_clip zero-shot heads use), in wnid order.
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    return tuple(IMAGENET_CLASSNAMES)


def resolve_universe(value) -> list[str]:
    """The label space: all 1000 wnids, or those named by --size wnids=... (in ImageNet index order)."""
    full = imagenet_wnids()
    if value is None:
        return list(full)
    if isinstance(value, (str, Path)) and Path(value).is_file():
        value = Path(value).read_text().split()
    chosen = set(parse_choice(value, full, "wnids"))
    if len(chosen) < 2:
        raise BenchmarkError("wnids= needs at least two ImageNet classes")
    return [w for w in full if w in chosen]


@dataclass
class Variant:
    """One ImageNet-labelled image folder: how its labels map; its card (datasets/<name>.toml) says where it
    lives, how many images a full copy has, and (its [hub]) whether a Hugging Face copy may stand in for it."""

    key: str          # name in --size evals=...
    name: str         # eval set / `benchmark prepare` name, and its card's
    classes: Callable[[dict], tuple[dict, LabelMap]]  # universe position of each wnid -> (folder -> label, map)
    splits: tuple[str, ...] = ("",)  # subfolders with images ("" = the folder itself, the card's "test" count)
    crop: int = 0
    looks_right: Callable[[Path], bool] = Path.is_dir
    folder_wnid: Callable[[str], str] = lambda folder: folder  # the wnid a class folder holds

    @property
    def location(self) -> Location:
        return location(self.name)

    @property
    def hub(self) -> dict | None:
        return card(self.name).get("hub")

    def expected(self, split: str) -> int:
        return count(self.name, split or "test")

    def find(self, data_root: Path | None) -> Path | HubCopy:
        """The image folder; a Hugging Face copy where the folder would be, or else the Hub id the card's [hub]
        variable names; a one-line error saying where it looked when there is none."""
        hub = self.hub
        try:
            root = self.location.find(data_root, self.looks_right)
        except NotFound:
            if not hub or not os.environ.get(hub["env"]):
                raise
            return HubCopy.open(self, os.environ[hub["env"]])
        return HubCopy.open(self, root) if hub and _saved_dataset(root) else root

    def scan(self, root: Path, universe_pos: dict, full: bool) -> dict[str, list]:
        class_to_idx, _ = self.classes(universe_pos)
        out = {}
        for split in self.splits:
            title = f"{self.location.title} {split}".strip()
            samples = scan_classes(root / split if split else root, class_to_idx, title)
            if full:
                check_count(title, len(samples), self.expected(split))
            out[split] = samples
        return out

    def dataset(self, copy: Path | HubCopy, universe_pos: dict, full: bool, n_max: int | None, seed: int,
                transform: Callable) -> Dataset:
        """The eval images of a one-folder variant (or of its Hugging Face copy), a seeded subsample of n_max."""
        if isinstance(copy, HubCopy):
            return HubImageDataset(copy, subsample(copy.samples(self, universe_pos, full), n_max, seed), transform)
        return ImageListDataset(subsample(self.scan(copy, universe_pos, full)[""], n_max, seed), transform, self.crop)


WNID = re.compile(r"n\d{8}")


def _saved_dataset(folder: Path) -> bool:
    # What `datasets.Dataset.save_to_disk` (or a DatasetDict's) leaves in a folder.
    return (folder / "dataset_info.json").is_file() or (folder / "dataset_dict.json").is_file()


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _open_copy(title: str, where: Path | str, split: str):
    """A `datasets.Dataset`: load_from_disk for a folder, else load_dataset of a Hub id ('owner/name' or
    'owner/name:split'), which reads only the local cache when HF_HUB_OFFLINE=1."""
    import datasets  # Hugging Face's; imported only when a copy is used (it is slow to import)

    try:
        if isinstance(where, Path):
            data = datasets.load_from_disk(str(where))
        else:
            repo, _, named = where.partition(":")
            data = datasets.load_dataset(repo, split=named or split)
    except Exception as e:  # noqa: BLE001 - datasets raises many types; the user needs one line
        raise BenchmarkError(f"cannot open the Hugging Face copy of {title} ({where}): {_first_line(e)}") from None
    if isinstance(data, datasets.DatasetDict):
        if split not in data:
            raise BenchmarkError(f"the Hugging Face copy of {title} ({where}) has splits {sorted(data)}, not {split!r}")
        data = data[split]
    return data


def _classlabel_tokens(where: str, names: list[str]) -> list[str]:
    """What each ClassLabel name says: a wnid or a class index as written, or (the 1000 ILSVRC lemmas in index
    order, as Hugging Face's ImageNet-family loaders name them) the class at that index."""
    if all(WNID.fullmatch(n) or n.isdigit() for n in names):
        return list(names)
    lemmas = imagenet_lemmas()
    # 'crane' names two classes: the other 998 names pin the order, and with it those two.
    repeated = {name for name, n in Counter(lemmas).items() if n > 1}
    if len(names) == len(lemmas) and all(n == m for n, m in zip(names, lemmas) if m not in repeated):
        return list(imagenet_wnids())
    raise BenchmarkError(f"{where}: its {len(names)} ClassLabel names (e.g. {names[0]!r}) are neither WordNet ids, "
                         f"class indices nor the ImageNet class names in index order; its labels cannot be mapped")


def _token_wnid(where: str, token: str) -> str:
    if WNID.fullmatch(token):
        return token
    wnids = imagenet_wnids()
    if token.isdigit() and int(token) < len(wnids):  # a class index, read as a number (never as sorted text)
        return wnids[int(token)]
    raise BenchmarkError(f"{where}: label {token!r} is neither a WordNet id nor an ImageNet class index")


def _row_wnids(where: str, data, hub: dict) -> list[str | None]:
    """Each row's class as the copy names it (see the card's [hub] labels); None for a WebDataset row whose key
    lies outside the card's key_prefix (another set in the same archive, as V2's repository holds three)."""
    from datasets import ClassLabel, Value

    column = next((c for c in hub["labels"] if c in data.column_names), None)
    if column is None:
        raise BenchmarkError(f"{where} has none of the label columns {hub['labels']} (columns: {', '.join(data.column_names)})")
    feature, values = data.features[column], data.select_columns([column]).to_dict()[column]
    if column == "__key__":  # a WebDataset key: '<key_prefix><class>/<file name>'
        prefix = hub.get("key_prefix", "")
        tokens = [key[len(prefix):].split("/")[0] if key.startswith(prefix) else None for key in values]
    elif isinstance(feature, ClassLabel):
        if min(values, default=0) < 0:  # -1: datasets' "no label", which no class may absorb
            raise BenchmarkError(f"{where}: {sum(v < 0 for v in values)} rows have no label (-1 in {column!r})")
        names = _classlabel_tokens(where, feature.names)
        tokens = [names[v] for v in values]
    elif feature == Value("string"):
        tokens = values
    else:
        raise BenchmarkError(f"{where}: label column {column!r} holds {feature}, not class names or a ClassLabel; "
                             f"which classes its values mean is unknown")
    wnid = {t: _token_wnid(where, t) for t in set(tokens) - {None}}
    return [wnid.get(t) for t in tokens]


@dataclass
class HubCopy:
    """A Hugging Face copy of a variant, opened: its image column and each row's wnid (None: not of this set)."""

    where: str
    images: object  # datasets.Dataset of the one image column
    column: str
    wnids: list

    @classmethod
    def open(cls, variant: Variant, where: Path | str) -> HubCopy:
        from datasets import Image

        title, hub = variant.location.title, variant.hub
        data = _open_copy(title, where, hub["split"])
        named = f"the Hugging Face copy of {title} ({where})"
        images = [c for c, f in data.features.items() if isinstance(f, Image)]
        if len(images) != 1:
            raise BenchmarkError(f"{named} has {len(images)} image columns ({', '.join(images) or 'none'}); expected one")
        return cls(named, data.select_columns(images), images[0], _row_wnids(named, data, hub))

    def samples(self, variant: Variant, universe_pos: dict, full: bool) -> list[tuple[int, int]]:
        """(row, label) for every row of a class in the universe, checked as a folder scan is: every label is one
        of the variant's classes, every class in the universe has images, and a full copy has the card's count."""
        label_of = {variant.folder_wnid(f): j for f, j in variant.classes(universe_pos)[0].items()}
        every = {w: i for i, w in enumerate(imagenet_wnids())}
        known = {variant.folder_wnid(f) for f in variant.classes(every)[0]}
        stray = sorted({w for w in self.wnids if w is not None} - known)
        if stray:
            raise BenchmarkError(f"{self.where}: {len(stray)} labels are not among its {len(known)} classes "
                                 f"(e.g. {', '.join(stray[:3])}): wrong copy or label column")  # fmt: skip
        rows = [(i, label_of[w]) for i, w in enumerate(self.wnids) if w in label_of]
        empty = sorted(set(label_of) - set(self.wnids))
        if empty:
            raise BenchmarkError(f"{self.where} is partial: {len(empty)} of {len(label_of)} classes have no images "
                                 f"(e.g. {', '.join(empty[:3])})")  # fmt: skip
        if full:
            check_count(variant.location.title, len(rows), variant.expected(""))
        return rows

    def image(self, row: int):
        try:
            return self.images[row][self.column].convert("RGB")
        except (OSError, ValueError) as e:
            raise BenchmarkError(f"cannot read image {row} of {self.where}: {e}") from None

    def unreadable(self, rows: list[int], title: str, progress: bool = True) -> list[str]:
        """Decode every row's image (what `prepare` does); 'row N: error' for each that fails."""
        bad = []
        for row in tqdm(rows, desc=f"decoding {title}", unit="img", disable=not progress, leave=False):
            try:
                self.image(row)
            except BenchmarkError as e:
                bad.append(f"row {row}: {e}")
        return bad


class HubImageDataset(Dataset):
    """Rows of a Hugging Face copy, decoded lazily, with their labels in the eval set's label space."""

    def __init__(self, copy: HubCopy, samples: list[tuple[int, int]], transform: Callable):
        self.copy, self.transform = copy, transform
        self.rows = np.asarray([r for r, _ in samples], dtype=np.int64)
        self.targets = [y for _, y in samples]

    def __len__(self):
        return len(self.rows)

    def sources(self):
        # The copy's Arrow files by size (a stat, as for image files), and which rows it uses with which labels.
        files = [Path(f["filename"]) for f in self.copy.images.cache_files]
        return files, self.rows, np.asarray(self.targets, dtype=np.int64)

    def __getitem__(self, i):
        return self.transform(self.copy.image(int(self.rows[i]))), self.targets[i]


def _same_wnids(pos):
    return dict(pos), IDENTITY


def _v2_classes(pos):
    index = {w: i for i, w in enumerate(imagenet_wnids())}
    # Folder names are the class indices as integers: map by value, never by sorted-string position.
    return {str(index[w]): p for w, p in pos.items()}, IDENTITY


def _subset_classes(which):
    def classes(pos):
        kept = [w for w in subset_wnids(which) if w in pos]
        if not kept:
            raise BenchmarkError(f"none of the chosen wnids is among ImageNet-{which.upper()}'s 200 classes; drop it with evals=")
        return {w: j for j, w in enumerate(kept)}, SubsetLabelMap([pos[w] for w in kept])

    return classes


def _objectnet_classes(pos):
    wnids = imagenet_wnids()
    groups = {}
    for folder, indices in objectnet_to_imagenet().items():
        group = [pos[wnids[i]] for i in indices if wnids[i] in pos]
        if group:  # with a restricted label space, an ObjectNet class keeps its ImageNet classes in it
            groups[folder] = group
    if not groups:
        raise BenchmarkError("none of the chosen wnids maps to an ObjectNet class; drop it with evals=")
    return {f: j for j, f in enumerate(groups)}, MaxPoolLabelMap(list(groups.values()))


VARIANTS = {
    "imagenet": Variant("imagenet", "imagenet", _same_wnids, splits=("train", "val"),
                        looks_right=lambda d: (d / "train").is_dir() and (d / "val").is_dir()),
    "v2": Variant("v2", "imagenet-v2", _v2_classes, folder_wnid=lambda folder: imagenet_wnids()[int(folder)]),
    "a": Variant("a", "imagenet-a", _subset_classes("a")),
    "r": Variant("r", "imagenet-r", _subset_classes("r")),
    "sketch": Variant("sketch", "imagenet-sketch", _same_wnids),
    "objectnet": Variant("objectnet", "objectnet", _objectnet_classes, crop=OBJECTNET_BORDER),
}  # fmt: skip
EVAL_KEYS = [k for k in VARIANTS if k != "imagenet"]


def split_train(samples: list, universe: list[str], sizes: dict) -> tuple[list, list]:
    """Per class: a seeded ``selection_per_class`` hold-out, the rest (optionally capped) for training.

    Seeds depend on the class's ImageNet index, so a class's hold-out is the same in every label space.
    """
    by_class: dict[int, list] = {}
    for s in samples:
        by_class.setdefault(s[1], []).append(s)
    index = {w: i for i, w in enumerate(imagenet_wnids())}
    k, seed = sizes["selection_per_class"], sizes["split_seed"]
    train, selection = [], []
    for label, wnid in enumerate(universe):
        items = by_class[label]
        if len(items) <= k:
            raise BenchmarkError(f"ImageNet train class {wnid} has {len(items)} images; selection_per_class={k} needs more")
        class_seed = seed * 1_000_003 + index[wnid]
        rest, held = disjoint_split(len(items), k, class_seed)
        train += subsample([items[i] for i in rest], sizes["train_per_class"], class_seed)
        selection += [items[i] for i in held]
    return train, selection


def imagenet_suite_around(name: str, opts: SuiteOptions, sizes: dict, universe: list[str], ood: list[EvalSet],
                          notes: dict) -> Suite:
    """ImageNet train / selection / val (id) around the given OOD eval sets (shared with imagenet-c).

    Callers scan their OOD data first: a missing or partial set then fails before the long train scan.
    """
    pos = {w: i for i, w in enumerate(universe)}
    full = len(universe) == len(imagenet_wnids())
    v = VARIANTS["imagenet"]
    splits = v.scan(v.location.find(opts.data_root, v.looks_right), pos, full)
    train, selection = split_train(splits["train"], universe, sizes)
    val = subsample(splits["val"], sizes["eval_max"], sizes["split_seed"])
    names, index = imagenet_classnames(), {w: i for i, w in enumerate(imagenet_wnids())}
    return Suite(
        name=name,
        classnames=[names[index[w]] for w in universe],
        train=ImageListDataset(train, opts.train_transform),
        selection=ImageListDataset(selection, opts.eval_transform),
        evals=[EvalSet("imagenet", "id", ImageListDataset(val, opts.eval_transform)), *ood],
        notes={"sizes": {k: list(v) if isinstance(v, tuple) else v for k, v in sizes.items()},
               "wnids": "all 1000" if full else universe, **notes},
    )  # fmt: skip


# CLIP fine-tuning on ImageNet, WiSE-FT's recipe (github.com/mlfoundations/wise-ft defaults; notes/protocols.md):
# AdamW lr 3e-5, wd 0.1, batch 512, 10 epochs, 500 warm-up steps then cosine, gradient norm clipped at 1.0
# (src/models/finetune.py). Shared by the imagenet-c suite.
RECIPE = {"optimizer": "adamw", "lr": 3e-5, "weight_decay": 0.1, "epochs": 10, "batch_size": 512, "warmup_steps": 500,
          "grad_clip": 1.0, "eval_batch_size": 512}  # fmt: skip
# The CLIP robust fine-tuning line (WiSE-FT, FLYP, Lipsum-FT) reports CLIP ViT-B/16 at its native 224 px.
CLIP_SUITE = dict(recipe=RECIPE, backbone="clip:ViT-B-16/openai", image_size=224,
                  methods=("zeroshot", "lp", "ft", "lp-ft", "wise-ft", "flyp", "lipsum-ft", "tpgm", "ftp", "fsr"))


def finders(keys) -> dict[str, Callable]:
    """`benchmark prepare` name -> the finder of each variant in keys."""
    return {VARIANTS[k].name: VARIANTS[k].find for k in keys}


def imagenet_needs(sizes: dict) -> dict[str, Callable]:
    return finders(["imagenet", *parse_choice(sizes["evals"], EVAL_KEYS, "evals")])


@register_suite("imagenet", "ImageNet-1k (ID) vs ImageNet-V2/-A/-R/-Sketch and ObjectNet (OOD); needs the data",
                sizes=DEFAULT_SIZES, needs=imagenet_needs, **CLIP_SUITE)
def imagenet_suite(opts: SuiteOptions) -> Suite:
    sizes = opts.sizes
    keys = parse_choice(sizes["evals"], EVAL_KEYS, "evals")
    universe = resolve_universe(sizes["wnids"])
    pos = {w: i for i, w in enumerate(universe)}
    full = len(universe) == len(imagenet_wnids())
    # Find every copy before scanning any, so a missing set fails in a second, not after the train scan.
    copies = {k: VARIANTS[k].find(opts.data_root) for k in ["imagenet", *keys]}
    ood = []
    for i, key in enumerate(keys, 1):
        v = VARIANTS[key]
        dataset = v.dataset(copies[key], pos, full, sizes["eval_max"], sizes["split_seed"] + i, opts.eval_transform)
        _, label_map = v.classes(pos)
        ood.append(EvalSet(v.name, "ood", dataset, label_map=label_map))
    return imagenet_suite_around("imagenet", opts, sizes, universe, ood,
                                 {"label_maps": {e.name: e.label_map.describe() for e in ood}})


def prepare_variant(key: str, data_root: Path | None, download: bool = False, progress: bool = True) -> PrepareReport:
    """Say what to download and where; verify a copy: classes, counts vs the card, every image decodes."""
    v = VARIANTS[key]
    loc = v.location
    lines = loc.report(data_root)
    if download:
        lines.append("automatic download is not offered (licences and hosts differ); follow the first line")
    try:
        copy = v.find(data_root)
        universe = {w: i for i, w in enumerate(imagenet_wnids())}
        verify = _verify_hub if isinstance(copy, HubCopy) else _verify_folders
        lines += verify(v, copy, universe, progress)
    except BenchmarkError as e:
        return PrepareReport(False, "\n".join(lines + [loc.missing(data_root, e)]))
    return PrepareReport(True, "\n".join(lines))


def _verify_folders(v: Variant, root: Path, universe: dict, progress: bool) -> list[str]:
    lines = []
    for split, samples in v.scan(root, universe, full=True).items():
        title = f"{v.location.title} {split}".strip()
        lines.append("ok  " + check_count(title, len(samples), v.expected(split)) + f"  ({root / split})")
        bad = verify_images([p for p, _ in samples], title, progress)
        if bad:
            raise BenchmarkError(f"{len(bad)} unreadable images in {title}, e.g. {bad[0]}")
        lines.append(f"ok  {title}: every image decodes")
    return lines


def _verify_hub(v: Variant, copy: HubCopy, universe: dict, progress: bool) -> list[str]:
    title = v.location.title
    rows = [r for r, _ in copy.samples(v, universe, full=False)]
    lines = ["ok  " + check_count(title, len(rows), v.expected("")) + f"  ({copy.where})"]
    bad = copy.unreadable(rows, title, progress)
    if bad:
        raise BenchmarkError(f"{len(bad)} unreadable images in {title}, e.g. {bad[0]}")
    return lines + [f"ok  {title}: every image decodes"]


def _register_prepare(key: str) -> None:
    role = "ID data of suites imagenet and imagenet-c" if key == "imagenet" else "an OOD set of suite imagenet"
    DATASETS.register(VARIANTS[key].name, role)(functools.partial(prepare_variant, key))


for _key in VARIANTS:
    _register_prepare(_key)
