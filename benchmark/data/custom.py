"""Suites from your own data: a suite card, a small TOML file, names an ID train and test set, any number of
named OOD sets, and optionally the label order, the names and prompt templates of CLIP zero-shot heads, the
backbone, image size, methods and training recipe. ``benchmark run --suite path/to/card.toml`` reads it
(benchmark.data.resolve_suite) and registers the suite under the card's ``name``: records go to
<results>/runs/<name>/, and ``leaderboard --suite`` takes the card's path or its name. Every key is documented
in datasets/examples/my_suite.toml; relative paths are relative to the card's folder.

A set is a class-per-folder tree (``folder``, listed with torchvision's folder machinery as ImageFolder lists
it) or a Hugging Face dataset with an Image column and a ClassLabel column: a ``save_to_disk`` directory
(``from_disk``) or a dataset id in the local Hub cache (``hub``; with HF_HUB_OFFLINE set nothing is
downloaded). Labels are matched by class name, never by position. A set whose classes are not the suite's is
an error naming a few, unless it is an OOD set with a ``subset``: its classes are some of the suite's, scored
on their logits alone (SubsetLabelMap, as ImageNet-A/R are).

The label order is the card's ``classes``, else the ID train set's: its class folders sorted by name, or its
ClassLabel names in their order. The selection split is a seeded slice of the ID train set
(``selection_fraction``, ``split_seed``; both are size options, so --size changes them).
"""
from __future__ import annotations

import dataclasses
import functools
import re
import tomllib
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision.datasets.folder import find_classes

from benchmark.data import SGD_KEYS, SuiteOptions, SuiteSpec
from benchmark.data.base import IDENTITY, EvalSet, Suite, SubsetLabelMap, disjoint_split
from benchmark.data.folders import ImageListDataset, scan_classes
from benchmark.errors import BenchmarkError

# The recipe of a card without [recipe]; each key its [recipe] sets replaces one. Untuned, a starting point:
# AdamW with the weight decay, cosine schedule and gradient clipping of WiSE-FT's CLIP recipe (imagenet.py), at
# a batch size and learning rate for a few thousand images and a CNN with a fresh head (fine-tuning CLIP wants a
# lower lr, e.g. 1e-5); no warm-up, as a small set may not have many steps in all.
RECIPE = {"optimizer": "adamw", "lr": 1e-4, "weight_decay": 0.1, "epochs": 10, "batch_size": 32, "warmup_steps": 0,
          "grad_clip": 1.0, "eval_batch_size": 256}  # fmt: skip
RECIPE_TYPES = {"optimizer": str, "lr": float, "weight_decay": float, "epochs": int, "batch_size": int,
                "warmup_steps": int, "grad_clip": float, "eval_batch_size": int, "momentum": float, "nesterov": bool}  # fmt: skip
SELECTION_FRACTION, SPLIT_SEED = 0.1, 0
BACKBONE, IMAGE_SIZE = "lite0", 224  # ImageNet weights that load offline, at their native resolution
# Default methods: every classification method the backbone can run (zeroshot, FLYP and Lipsum-FT need CLIP).
METHODS = ("lp", "ft", "lp-ft", "wise-ft", "l2-sp", "tpgm", "ftp", "fsr")
CLIP_METHODS = ("zeroshot", "lp", "ft", "lp-ft", "wise-ft", "flyp", "lipsum-ft", "tpgm", "ftp", "fsr")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # a folder name under runs/ on every OS
CARD_KEYS = ("name", "description", "classes", "classnames", "templates", "selection_fraction", "split_seed",
             "backbone", "image_size", "methods", "recipe", "train", "test", "ood")  # fmt: skip
KINDS = ("folder", "from_disk", "hub")
HF_KEYS = ("split", "image_column", "label_column")
NAMED = 3  # names an error gives before it counts the rest
REQUIRED = object()
NOUNS = {str: "a string", int: "a whole number", float: "a number", bool: "true or false", list: "a list", dict: "a table"}


def few(names) -> str:
    names = list(names)
    return ", ".join(names[:NAMED]) + (f" and {len(names) - NAMED} more" if len(names) > NAMED else "")


def check_keys(table: dict, allowed, where: str) -> None:
    unknown = [k for k in table if k not in allowed]
    if unknown:
        raise BenchmarkError(f"{where}: unknown key(s) {few(unknown)}; valid: {', '.join(allowed)}")


def value(table: dict, key: str, kind, where: str, default=REQUIRED):
    """table[key], of type `kind` (a type or a tuple of types; a whole number is a float too), else `default`."""
    if key not in table:
        if default is REQUIRED:
            raise BenchmarkError(f"{where}: {key} is missing")
        return default
    found, kinds = table[key], kind if isinstance(kind, tuple) else (kind,)
    if float in kinds and isinstance(found, int) and not isinstance(found, bool):
        return float(found)
    if not isinstance(found, kinds) or (isinstance(found, bool) and bool not in kinds):
        raise BenchmarkError(f"{where}: {key} = {found!r} is not {' or '.join(NOUNS[k] for k in kinds)}")
    return found


def names(table: dict, key: str, where: str) -> tuple[str, ...]:
    """A list of distinct names (empty when absent)."""
    items = value(table, key, list, where, [])
    if not all(isinstance(i, str) and i for i in items):
        raise BenchmarkError(f"{where}: {key} must be a list of names")
    repeated = sorted({i for i in items if items.count(i) > 1})
    if repeated:
        raise BenchmarkError(f"{where}: {key} names {few(repeated)} more than once")
    return tuple(items)


def resolve(base: Path, path: str) -> Path:
    found = Path(path).expanduser()
    return found if found.is_absolute() else base / found


@dataclasses.dataclass
class Source:
    """One set of a card: where its images are and, for an OOD set, which of the suite's classes it holds."""

    suite: str
    table: str  # its table in the card: "train", "test" or "ood.<name>"
    kind: str  # one of KINDS
    where: str  # folder or save_to_disk directory (absolute), or Hub dataset id
    split: str | None = None
    image_column: str = "image"
    label_column: str = "label"
    subset: dict[str, str] | None = None  # own class -> suite class; None: exactly the suite's classes

    @property
    def name(self) -> str:
        """The eval set's name: its table's ("test" for the ID test set)."""
        return self.table.removeprefix("ood.")

    @property
    def title(self) -> str:
        return f"{self.suite} [{self.table}]"

    def open(self) -> "FolderSet | HFSet":
        return FolderSet(self) if self.kind == "folder" else HFSet(self)

    def find(self, data_root=None) -> None:
        """The finder SuiteSpec.needs gives: opens the set (a card's paths do not depend on --data-root)."""
        self.open()


@dataclasses.dataclass
class Card:
    path: Path
    name: str
    train: Source
    test: Source
    ood: list[Source]
    classes: tuple[str, ...]  # label order; empty: the train set's
    classnames: list | dict | None  # CLIP prompt names, in label order or by class; None: the classes
    templates: tuple[str, ...]

    def needs(self, sizes: dict) -> dict[str, Callable]:
        return {s.title: s.find for s in (self.train, self.test, *self.ood)}


def read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchmarkError(f"suite card {path} not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise BenchmarkError(f"suite card {path} is unreadable: {e}") from None


def card_suite(path: Path) -> SuiteSpec:
    """The suite a card defines; its data is read only when the suite is built."""
    raw, where = read_toml(path), f"suite card {path}"
    check_keys(raw, CARD_KEYS, where)
    name = value(raw, "name", str, where)
    if not NAME.fullmatch(name):
        raise BenchmarkError(f"{where}: name {name!r} must be usable as a folder name (letters, digits, '.', '_', '-')")
    base = path.resolve().parent
    ood = value(raw, "ood", dict, where, {})
    taken = [n for n in ood if n in ("test", "selection")]  # the ID test set's and the selection split's
    if taken:
        raise BenchmarkError(f"{where}: an OOD set may not be called {taken[0]!r}")
    sets = [parse_set(value(raw, key, dict, where), key, name, base, where) for key in ("train", "test")]
    sets += [parse_set(value(ood, n, dict, f"{where} [ood]"), f"ood.{n}", name, base, where) for n in ood]
    card = Card(path.resolve(), name, sets[0], sets[1], sets[2:], names(raw, "classes", where),
                parse_classnames(raw, where), parse_templates(raw, base, where))
    backbone = value(raw, "backbone", str, where, BACKBONE)
    image_size = value(raw, "image_size", int, where, IMAGE_SIZE)
    if image_size < 1:
        raise BenchmarkError(f"{where}: image_size must be a positive number of pixels")
    seed = value(raw, "split_seed", int, where, SPLIT_SEED)
    if not 0 <= seed < 2**32:
        raise BenchmarkError(f"{where}: split_seed must be a whole number from 0 to 2**32 - 1")
    sizes = {"selection_fraction": value(raw, "selection_fraction", float, where, SELECTION_FRACTION), "split_seed": seed}
    check_fraction(sizes["selection_fraction"], where)
    methods = names(raw, "methods", where) or (CLIP_METHODS if backbone.startswith("clip:") else METHODS)
    return SuiteSpec(name, value(raw, "description", str, where, f"suite card {path}"), functools.partial(build, card),
                     parse_recipe(value(raw, "recipe", dict, where, {}), where), sizes, backbone, image_size, methods,
                     needs=card.needs)  # fmt: skip


def parse_set(table: dict, table_name: str, suite: str, base: Path, where: str) -> Source:
    where, ood = f"{where} [{table_name}]", table_name.startswith("ood.")
    kinds = [k for k in KINDS if k in table]
    if len(kinds) != 1:
        raise BenchmarkError(f"{where}: give exactly one of {', '.join(KINDS)}")
    kind = kinds[0]
    check_keys(table, (kind, *(HF_KEYS if kind != "folder" else ()), *(("subset",) if ood else ())), where)
    location = value(table, kind, str, where)
    return Source(suite, table_name, kind, location if kind == "hub" else str(resolve(base, location)),
                  value(table, "split", str, where, None), value(table, "image_column", str, where, "image"),
                  value(table, "label_column", str, where, "label"), parse_subset(table, where) if ood else None)  # fmt: skip


def parse_subset(table: dict, where: str) -> dict[str, str] | None:
    """`subset`: the suite classes an OOD set holds (its class folders or ClassLabel names are those names), or a
    table {its class = suite class} where they are named otherwise."""
    subset = value(table, "subset", (list, dict), where, None)
    if subset is None:
        return None
    if isinstance(subset, list):
        listed = names(table, "subset", where)
        subset = dict(zip(listed, listed))
    if not subset or not all(isinstance(v, str) for v in subset.values()):
        raise BenchmarkError(f"{where}: subset must list suite classes, or map each of the set's classes to one")
    targets = list(subset.values())
    twice = sorted({t for t in targets if targets.count(t) > 1})
    if twice:
        raise BenchmarkError(f"{where}: subset maps several classes onto {few(twice)}; each suite class may have one")
    return subset


def parse_classnames(raw: dict, where: str) -> list | dict | None:
    given = value(raw, "classnames", (list, dict), where, None)
    items = given.values() if isinstance(given, dict) else given or []
    if not all(isinstance(n, str) and n for n in items):
        raise BenchmarkError(f"{where}: classnames must be names: a list in label order, or a table {{class = name}}")
    return given


def parse_templates(raw: dict, base: Path, where: str) -> tuple[str, ...]:
    """`templates`: a list of prompt templates, or a file of them, one a line (blank lines skipped)."""
    given = value(raw, "templates", (list, str), where, None)
    if given is None:
        return ()
    if isinstance(given, str):
        file = resolve(base, given)
        try:
            given = [line.strip() for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as e:
            raise BenchmarkError(f"{where}: cannot read templates file {file}: {e}") from None
    bad = [t for t in given if not isinstance(t, str) or "{}" not in t]
    if not given or bad:
        raise BenchmarkError(f"{where}: templates need '{{}}' where the class name goes, e.g. 'a photo of a {{}}.'"
                             + (f"; not {bad[0]!r}" if bad else "; none given"))  # fmt: skip
    return tuple(given)


def parse_recipe(table: dict, where: str) -> dict:
    """The generic RECIPE with the card's [recipe] keys in its place."""
    where = f"{where} [recipe]"
    check_keys(table, tuple(RECIPE_TYPES), where)
    recipe = {**RECIPE, **{k: value(table, k, RECIPE_TYPES[k], where) for k in table}}
    sgd = [k for k in SGD_KEYS if k in recipe]
    if recipe["optimizer"] == "sgd" and len(sgd) < len(SGD_KEYS):
        raise BenchmarkError(f"{where}: optimizer sgd needs {' and '.join(SGD_KEYS)} too")
    if recipe["optimizer"] != "sgd" and sgd:
        raise BenchmarkError(f"{where}: {', '.join(sgd)} apply to optimizer sgd only")
    return recipe


class FolderSet:
    """A class-per-folder tree, its classes listed as ImageFolder lists them (folders, sorted by name)."""

    def __init__(self, source: Source):
        self.source, root = source, Path(source.where)
        if not root.is_dir():
            raise BenchmarkError(f"{source.title}: folder {root} not found")
        try:
            classes, _ = find_classes(str(root))
        except FileNotFoundError:
            raise BenchmarkError(f"{source.title}: {root} holds no class folders (one folder of images per class)") from None
        self.classes = [c for c in classes if not c.startswith(".")]  # .ipynb_checkpoints and the like

    def dataset(self, label_of: dict[str, int], scored: np.ndarray, transform) -> "FolderDataset":
        return FolderDataset(scan_classes(Path(self.source.where), label_of, self.source.title), transform, scored)


class FolderDataset(ImageListDataset):
    """A folder set's images; ``scored[label]`` is the suite class a label is scored on (fingerprinted with the
    data, so that a changed subset map never passes for the old one)."""

    def __init__(self, samples, transform, scored: np.ndarray):
        super().__init__(samples, transform)
        self.scored = scored

    def sources(self):
        return [*super().sources(), self.scored]

    def part(self, rows, transform) -> "FolderDataset":
        return FolderDataset([self.samples[i] for i in rows], transform, self.scored)


def load_hf(source: Source):
    """The split a card names: from a save_to_disk directory, or from the local Hub cache (HF_HUB_OFFLINE: only
    from there)."""
    import datasets

    try:
        if source.kind == "from_disk":
            data = datasets.load_from_disk(source.where)
        else:
            data = datasets.load_dataset(source.where, split=source.split)
    except Exception as e:  # noqa: BLE001 - datasets raises many types; the user needs one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        cache_only = source.kind == "hub" and datasets.config.HF_HUB_OFFLINE
        note = "; HF_HUB_OFFLINE is set: only the local cache was read" if cache_only else ""
        raise BenchmarkError(f"{source.title}: cannot load Hugging Face dataset {source.where}: {first}{note}") from None
    if isinstance(data, datasets.DatasetDict):
        if source.split not in data:
            raise BenchmarkError(f"{source.title}: {source.where} holds splits {', '.join(data)}; name one with split = \"...\"")
        return data[source.split]
    if source.split is not None and source.kind == "from_disk":
        raise BenchmarkError(f"{source.title}: {source.where} is a single split; drop split = {source.split!r}")
    return data


class HFSet:
    """A Hugging Face dataset split with an Image column and a ClassLabel column (whose names are its classes)."""

    def __init__(self, source: Source):
        import datasets

        self.source, self.data = source, load_hf(source)
        features = self.data.features
        expected = (("image_column", datasets.Image, "an Image"), ("label_column", datasets.ClassLabel, "a ClassLabel"))
        for key, feature, what in expected:
            column = getattr(source, key)
            if not isinstance(features.get(column), feature):
                raise BenchmarkError(f"{source.title}: column {column!r} of {source.where} is not {what} feature "
                                     f"(columns: {', '.join(features)}); name the right one with {key}")  # fmt: skip
        self.classes = list(features[source.label_column].names)

    def dataset(self, label_of: dict[str, int], scored: np.ndarray, transform) -> "HFImageDataset":
        column = self.source.label_column
        own = self.data.select_columns([column]).with_format("numpy")[:][column]
        if (own < 0).any():
            raise BenchmarkError(f"{self.source.title}: {(own < 0).sum()} rows of {self.source.where} have no label (-1)")
        labels = np.array([label_of[c] for c in self.classes], dtype=np.int64)[own]  # by name, never by position
        return HFImageDataset(self.data.select_columns([self.source.image_column]), self.data._fingerprint,
                              self.source.title, self.source.image_column, np.arange(len(own)), labels, scored, transform)  # fmt: skip


@dataclasses.dataclass(eq=False)
class HFImageDataset(Dataset):
    """Rows of a Hugging Face dataset, the image decoded on access (as RGB), the labels the suite's. Fingerprinted
    by the dataset's own fingerprint (datasets' hash of its content and history, saved by save_to_disk, so every
    copy of the directory keeps it) with the rows and labels."""

    data: object  # datasets.Dataset of the image column alone
    fingerprint: str
    title: str
    image_column: str
    rows: np.ndarray
    labels: np.ndarray
    scored: np.ndarray
    transform: Callable

    def __len__(self):
        return len(self.rows)

    def sources(self):
        return [self.fingerprint, self.rows, self.labels, self.scored]

    def __getitem__(self, i):
        row = int(self.rows[i])
        try:
            image = self.data[row][self.image_column].convert("RGB")
        except (OSError, UnidentifiedImageError, ValueError) as e:
            raise BenchmarkError(f"{self.title}: cannot read the image of row {row}: {e}") from None
        return self.transform(image), int(self.labels[i])

    def part(self, rows, transform) -> "HFImageDataset":
        return dataclasses.replace(self, rows=self.rows[rows], labels=self.labels[rows], transform=transform)


def label_space(opened: FolderSet | HFSet, classes: list[str]) -> tuple[dict[str, int], np.ndarray]:
    """A set's own class -> label, and for each label the suite class it is scored on; the set's classes must be
    the suite's (or its subset's) exactly."""
    source = opened.source
    pairs = source.subset or {c: c for c in classes}
    missing = [c for c in pairs if c not in opened.classes]
    extra = [c for c in opened.classes if c not in pairs]
    if missing or extra:
        against = "its subset" if source.subset else "the suite"
        parts = [f"{len(missing)} missing ({few(missing)})"] if missing else []
        parts += [f"{len(extra)} extra ({few(extra)})"] if extra else []
        ood_without_subset = source.table.startswith("ood.") and not source.subset
        hint = f"; if its classes are some of the suite's, give [{source.table}] a subset" if ood_without_subset else ""
        raise BenchmarkError(f"{source.title}: its classes do not match {against}'s: {'; '.join(parts)}{hint}")
    unknown = [c for c in pairs.values() if c not in classes]
    if unknown:
        raise BenchmarkError(f"{source.title}: subset names {few(unknown)}, not classes of the suite ({few(classes)})")
    position = {c: i for i, c in enumerate(classes)}
    return {c: i for i, c in enumerate(pairs)}, np.array([position[pairs[c]] for c in pairs], dtype=np.int64)


def labelled(source: Source, classes: list[str], transform):
    opened = source.open()
    return opened.dataset(*label_space(opened, classes), transform)


def prompt_names(card: Card, classes: list[str]) -> list[str]:
    """The class names CLIP prompts use: the card's classnames (in label order, or by class), else the classes."""
    given, where = card.classnames, f"suite card {card.path}"
    if given is None:
        return list(classes)
    if isinstance(given, list):
        if len(given) != len(classes):
            raise BenchmarkError(f"{where}: classnames has {len(given)} names for {len(classes)} classes ({few(classes)})")
        return list(given)
    unknown = [c for c in given if c not in classes]
    if unknown:
        raise BenchmarkError(f"{where}: classnames names {few(unknown)}, not classes of the suite ({few(classes)})")
    return [given.get(c, c) for c in classes]


def check_fraction(fraction: float, where: str) -> None:
    if not 0 < fraction < 1:
        raise BenchmarkError(f"{where}: selection_fraction = {fraction} is not a fraction between 0 and 1 (of the train set)")


def selection_rows(n: int, sizes: dict, title: str) -> tuple[np.ndarray, np.ndarray]:
    """(fit, selection): a seeded, disjoint slice of the train set's n images."""
    check_fraction(sizes["selection_fraction"], title)  # --size may have changed it
    held = max(1, round(sizes["selection_fraction"] * n))
    if held >= n:
        raise BenchmarkError(f"{title} has {n} images: too few to hold out a selection split")
    return disjoint_split(n, held, sizes["split_seed"])


def build(card: Card, opts: SuiteOptions) -> Suite:
    train_set = card.train.open()
    classes = list(card.classes or train_set.classes)
    pool = train_set.dataset(*label_space(train_set, classes), opts.train_transform)
    fit, selection = selection_rows(len(pool), opts.sizes, card.train.title)
    evals = [EvalSet(card.test.name, "id", labelled(card.test, classes, opts.eval_transform))]
    for source in card.ood:
        dataset = labelled(source, classes, opts.eval_transform)
        evals.append(EvalSet(source.name, "ood", dataset, SubsetLabelMap(dataset.scored) if source.subset else IDENTITY))
    return Suite(card.name, prompt_names(card, classes), pool.part(fit, opts.train_transform),
                 pool.part(selection, opts.eval_transform), evals, templates=card.templates,
                 notes={"card": str(card.path), "sizes": dict(opts.sizes), "classes": classes})  # fmt: skip
