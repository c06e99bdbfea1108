"""PASCAL segmentation suites (cards: datasets/pascal-context.toml, datasets/pascal-voc.toml).

- ``pascal-context`` / ``pascal-parts``: the PASCAL-Context multi-task data as packaged by
  Multi-Task-Learning-PyTorch (Vandenhende et al.; ``PASCAL_MT.tgz``), which TPGM and FTP use:
  ``JPEGImages/<id>.jpg``, ``semseg/{VOC12,pascal-context}/<id>.png`` (21 VOC classes, 255 = void; the
  VOC12 file wins when both exist, as in its loader), ``human_parts/<id>.mat`` (Pascal-Part ``anno``
  structs), ``ImageSets/Context/{train,val}.txt``. Human parts follow its 6-part grouping (+ background);
  only images with a person object are used (its single-task filter), and a person image whose persons
  carry no part annotation is all-ignore (its ``AddIgnoreRegions``).
- ``pascal-voc``: PASCAL VOC 2012 segmentation, ``VOCdevkit/VOC2012`` read with torchvision's
  ``VOCSegmentation`` (21 classes, 255 = void).

Every suite: selection = a seeded held-out slice of train (never val); ID = clean val; OOD = val images
under each imagecorruptions corruption and severity (fog first), corrupted at their original size once
into the resumable on-disk cache (benchmark/corruption/cache.py); masks are never corrupted.
"""
from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image

from benchmark.data import segmentation
from benchmark.corruption.cache import CorruptionCache, FileImages, _decode, content_key
from benchmark.data import DATASETS, PrepareReport, SuiteOptions, register_suite
from benchmark.data.base import EvalSet, Suite, disjoint_split
from benchmark.data.cards import count, location
from benchmark.errors import BenchmarkError
from benchmark.resources import shipped
from benchmark.data.segmentation import IGNORE, SegDataset



@functools.cache
def class_list(name: str) -> tuple[str, ...]:
    """A class list shipped in datasets/pascal/ (voc_classes, human_part_classes)."""
    return tuple(line for line in shipped("datasets", "pascal", f"{name}.txt").read_text().splitlines() if line)


PERSON = 15  # VOC class index of "person" (Pascal-Part class_ind)
# Pascal-Part person part names -> the 6 human-part classes (MTL-PyTorch PASCALContext.HUMAN_PART[6]).
PART_OF = {**dict.fromkeys(("hair", "head", "lear", "lebrow", "leye", "mouth", "nose", "rear", "rebrow", "reye"), 1),
           "neck": 2, "torso": 2, "luarm": 3, "ruarm": 3, **dict.fromkeys(("lhand", "llarm", "rhand", "rlarm"), 4),
           "luleg": 5, "ruleg": 5, **dict.fromkeys(("lfoot", "llleg", "rfoot", "rlleg"), 6)}  # fmt: skip

DEFAULT_SIZES = {
    "selection_fraction": 0.1,  # of train held out for selection (TPGM's 90/10 split of DomainNet-real train)
    "n_train": None,            # None = every remaining train image; an int takes a seeded subset
    "n_val": None,              # None = the whole val split (the reported ID set)
    "n_ood": None,              # None = every val image is corrupted; an int corrupts the first n_ood
    "severities": (1, 2, 3, 4, 5),
    "corruptions": segmentation.CORRUPTIONS,
    "split_seed": 0,
}  # fmt: skip


# ---- masks -------------------------------------------------------------------------------------------

def check_labels(mask: np.ndarray, num_classes: int, path) -> np.ndarray:
    bad = (mask >= num_classes) & (mask != IGNORE)
    if bad.any():
        raise BenchmarkError(f"{path}: label {int(mask[bad].max())} out of range (expected 0..{num_classes - 1} or 255)")
    return mask


def read_png_mask(path: Path, num_classes: int) -> np.ndarray:
    """A label PNG (palette or grey): pixel value = class index, 255 = void."""
    try:
        with Image.open(path) as im:
            mask = np.asarray(im)
    except OSError as e:
        raise BenchmarkError(f"cannot read mask {path}: {e}") from None
    if mask.ndim != 2:
        raise BenchmarkError(f"{path}: a label mask must be single-channel (palette or grey), got shape {mask.shape}")
    return check_labels(mask.astype(np.uint8) if mask.max() <= 255 else mask, num_classes, path)


def load_anno(path: Path):
    import scipy.io

    try:
        return scipy.io.loadmat(path)["anno"][0, 0]
    except (OSError, ValueError, KeyError, IndexError) as e:
        raise BenchmarkError(f"cannot read human-part annotation {path} (a Pascal-Part .mat with an 'anno' struct): {e}") from None


def person_objects(anno) -> list:
    return [obj for obj in anno["objects"][0] if int(np.asarray(obj["class_ind"]).ravel()[0]) == PERSON]


def read_human_parts(path: Path) -> np.ndarray:
    """The 7-class human-part mask of one image: each part of each person painted with its group."""
    anno = load_anno(path)
    persons = person_objects(anno)
    objects = anno["objects"][0]
    if not len(objects):
        raise BenchmarkError(f"{path}: no objects, so no mask size")
    target = np.zeros(np.asarray(objects[0]["mask"]).shape, dtype=np.uint8)
    for obj in persons:
        parts = obj["parts"]
        for part in (parts[0] if parts.size else []):
            name = str(np.asarray(part["part_name"]).ravel()[0])
            if name not in PART_OF:
                raise BenchmarkError(f"{path}: unknown person part {name!r}; expected one of {sorted(PART_OF)}")
            target[np.asarray(part["mask"]).astype(bool)] = PART_OF[name]
    if not target.any():  # persons without part annotations: nothing to score (MTL's AddIgnoreRegions)
        target[:] = IGNORE
    return target


class MaskFiles:
    """Masks read on access; ``reader(path) -> HxW uint8``."""

    def __init__(self, paths: list[Path], reader):
        self.paths, self.reader = paths, reader

    def __len__(self):
        return len(self.paths)

    def sources(self):
        return self.paths

    def __getitem__(self, i):
        return self.reader(self.paths[i])


class CachedImages:
    """One corrupted set of the on-disk cache, read one shard at a time (a whole PASCAL set is GBs)."""

    def __init__(self, cache: CorruptionCache, corruption: str, severity: int):
        self.cache, self.shards, self.corruption = cache, cache.shards(corruption, severity), f"{corruption}@{severity}"
        self._loaded: tuple[int, list] | None = None

    def __len__(self):
        return self.cache.n

    def sources(self):
        # Its clean images and the corruption: the cache is keyed on those, so its shards are not read here.
        return self.cache.clean, self.corruption

    def __getitem__(self, i):
        k = i // self.cache.shard_size
        if self._loaded is None or self._loaded[0] != k:
            path = self.cache.dir / f"{self.shards[k][0]}.npz"
            try:
                self._loaded = (k, list(_decode(path.read_bytes())))
            except OSError as e:
                raise BenchmarkError(f"corrupted-set cache file {path} unreadable ({e}); run again to rebuild it") from None
        return self._loaded[1][i - self.shards[k][1]]


# ---- layouts -------------------------------------------------------------------------------------------

def read_ids(path: Path) -> list[str]:
    if not path.is_file():
        raise BenchmarkError(f"split file {path} not found")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def context_root(data_root) -> Path:
    """The PASCAL_MT directory, where the pascal-context card says to look."""
    return location("pascal-context").find(data_root, lambda d: (d / "ImageSets" / "Context").is_dir())


def context_split(root: Path, split: str, task: str) -> tuple[list[Path], list[Path]]:
    """(image paths, mask paths) of one split; every image must have its mask."""
    ids = read_ids(root / "ImageSets" / "Context" / f"{split}.txt")
    images = [root / "JPEGImages" / f"{i}.jpg" for i in ids]
    missing = [p for p in images if not p.is_file()]
    if missing:
        raise BenchmarkError(f"PASCAL-Context {split}: {len(missing)} image(s) missing, e.g. {missing[0]}")
    if task == "semseg":
        masks = []
        for i in ids:
            found = [p for p in (root / "semseg" / "VOC12" / f"{i}.png", root / "semseg" / "pascal-context" / f"{i}.png") if p.is_file()]
            if not found:
                raise BenchmarkError(f"PASCAL-Context {split}: no semseg mask for image {i} (semseg/VOC12/{i}.png or semseg/pascal-context/{i}.png)")
            masks.append(found[0])
        return images, masks
    masks = [root / "human_parts" / f"{i}.mat" for i in ids]
    missing = [p for p in masks if not p.is_file()]
    if missing:
        raise BenchmarkError(f"PASCAL-Context {split}: no human-part annotation for image {missing[0].stem} ({missing[0]})")
    return images, masks


def with_persons(images: list[Path], masks: list[Path], cache_dir: Path) -> tuple[list[Path], list[Path]]:
    """Keep images with a person object; the per-file answer is cached (reading every .mat takes minutes)."""
    cache_path = cache_dir / "pascal-parts" / (hashlib.sha256("\n".join(map(str, masks)).encode()).hexdigest()[:16] + ".json")
    try:
        has = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        has = [bool(person_objects(load_anno(m))) for m in masks]
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        cache_path.write_text(json.dumps(has))
    return [p for p, h in zip(images, has) if h], [m for m, h in zip(masks, has) if h]


def voc_root(data_root) -> Path:
    """The directory holding VOCdevkit/VOC2012 (what torchvision's reader takes), where the pascal-voc card says
    to look; a candidate may also be VOCdevkit itself."""
    def holds(d: Path) -> bool:
        return (d / "VOCdevkit" / "VOC2012").is_dir()

    found = location("pascal-voc").find(data_root, lambda d: holds(d) or (d.name == "VOCdevkit" and (d / "VOC2012").is_dir()))
    return found if holds(found) else found.parent


def voc_split(root: Path, split: str) -> tuple[list[Path], list[Path]]:
    from torchvision.datasets import VOCSegmentation

    try:
        voc = VOCSegmentation(str(root), year="2012", image_set=split, download=False)
    except (RuntimeError, OSError, ValueError) as e:
        raise BenchmarkError(f"PASCAL VOC 2012 {split} under {root}: {e}") from None
    images, masks = [Path(p) for p in voc.images], [Path(p) for p in voc.masks]
    for kind, paths in (("image", images), ("mask", masks)):
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise BenchmarkError(f"PASCAL VOC 2012 {split}: {len(missing)} {kind}(s) missing, e.g. {missing[0]}")
    return images, masks


# ---- suites -------------------------------------------------------------------------------------------

def check_sizes(suite: str, sizes: dict) -> None:
    segmentation.check_corruptions(sizes)
    if not 0 < sizes["selection_fraction"] < 1:
        raise BenchmarkError(f"{suite}: selection_fraction must be in (0, 1)")


# Multi-Task-Learning-PyTorch's single-task recipe (configs/pascal/resnet18/{semseg,human_parts}.yml: Adam lr
# 1e-4, weight decay 1e-4, 60 epochs, batch 12, no clipping; its "poly" decay is cosine here), for every method.
RECIPE = {"optimizer": "adamw", "lr": 1e-4, "weight_decay": 1e-4, "epochs": 60, "batch_size": 12, "warmup_steps": 0,
          "grad_clip": 0.0, "eval_batch_size": 12}  # fmt: skip
# MTL-PyTorch's model: dilated ResNet-18 + DeepLab-v3 ASPP head, 512x512 inputs (its FixedResize); methods whose
# loss and variants are defined per pixel (not LP, LP-FT, FLYP, zero-shot).
SUITE = dict(recipe=RECIPE, sizes=DEFAULT_SIZES, backbone="deeplab:resnet18", image_size=512,
             methods=("ft", "l2-sp", "tpgm", "ftp"))


def subset(items: list, n, what: str, seed: int) -> list:
    if n is None:
        return items
    if not 0 < n <= len(items):
        raise BenchmarkError(f"{what} must be in 1..{len(items)}, got {n}")
    return [items[i] for i in np.sort(np.random.default_rng(seed).permutation(len(items))[:n])]


def build(name: str, classnames: list[str], train: tuple, val: tuple, reader, opts: SuiteOptions) -> Suite:
    sizes = opts.sizes
    check_sizes(name, sizes)
    seed = sizes["split_seed"]
    n = len(train[0])
    fit_idx, sel_idx = disjoint_split(n, max(1, round(sizes["selection_fraction"] * n)), seed)
    fit_pairs = subset([(train[0][i], train[1][i]) for i in fit_idx], sizes["n_train"], f"{name} n_train", seed)
    val_pairs = subset(list(zip(*val)), sizes["n_val"], f"{name} n_val", seed + 1)
    ood_pairs = val_pairs[: sizes["n_ood"] or len(val_pairs)]

    def ds(pairs, train=False):
        images, masks = [p for p, _ in pairs], [m for _, m in pairs]
        return SegDataset(FileImages(images), MaskFiles(masks, reader), opts.train_transform if train else opts.eval_transform, flip=train)

    ood_images = FileImages([p for p, _ in ood_pairs])
    cache = CorruptionCache(opts.cache_dir / name / content_key(ood_images), ood_images, shard_size=64)
    pairs = [(c, s) for c in sizes["corruptions"] for s in sizes["severities"]]
    cache.build(pairs, opts.workers, opts.progress)
    ood_masks = MaskFiles([m for _, m in ood_pairs], reader)
    evals = [EvalSet(name, "id", ds(val_pairs), metric="miou")]
    evals += [EvalSet(f"{c}@{s}", "ood", SegDataset(CachedImages(cache, c, s), ood_masks, opts.eval_transform), metric="miou", group=c)
              for c, s in pairs]  # fmt: skip
    return Suite(name=name, classnames=classnames, train=ds(fit_pairs, train=True),
                 selection=ds([(train[0][i], train[1][i]) for i in sel_idx]), evals=evals, task="segmentation",
                 notes={"sizes": {k: list(v) if isinstance(v, tuple) else v for k, v in sizes.items()}})  # fmt: skip


def semseg_reader(path: Path) -> np.ndarray:
    return read_png_mask(path, len(class_list("voc_classes")))


@register_suite("pascal-context", "PASCAL-Context (multi-task packaging) semantic segmentation, 21 classes, mIoU; OOD = corrupted val",
                needs=lambda sizes: {"pascal-context": context_root}, **SUITE)
def pascal_context(opts: SuiteOptions) -> Suite:
    root = context_root(opts.data_root)
    return build("pascal-context", list(class_list("voc_classes")), context_split(root, "train", "semseg"), context_split(root, "val", "semseg"),
                 semseg_reader, opts)  # fmt: skip


@register_suite("pascal-parts", "PASCAL-Context human parts (6 parts + background), mIoU; OOD = corrupted val",
                needs=lambda sizes: {"pascal-context": context_root}, **SUITE)
def pascal_parts(opts: SuiteOptions) -> Suite:
    root = context_root(opts.data_root)
    train = with_persons(*context_split(root, "train", "human_parts"), opts.cache_dir)
    val = with_persons(*context_split(root, "val", "human_parts"), opts.cache_dir)
    return build("pascal-parts", list(class_list("human_part_classes")), train, val, read_human_parts, opts)


@register_suite("pascal-voc", "PASCAL VOC 2012 semantic segmentation, 21 classes, mIoU; OOD = corrupted val",
                needs=lambda sizes: {"pascal-voc": voc_root}, **SUITE)
def pascal_voc(opts: SuiteOptions) -> Suite:
    root = voc_root(opts.data_root)
    return build("pascal-voc", list(class_list("voc_classes")), voc_split(root, "train"), voc_split(root, "val"), semseg_reader, opts)


# ---- prepare ------------------------------------------------------------------------------------------

def verify(lines: list[str], name: str, splits: dict, reader, sample: int = 20) -> PrepareReport:
    ok = True
    for split, (images, masks) in splits.items():
        expected = count(name, split)
        mark = "ok " if len(images) == expected else "BAD"
        ok &= len(images) == expected
        lines.append(f"{mark} {split}: {len(images)} images with masks (expected {expected})")
        for m in masks[:sample]:  # label ranges of a sample; the rest are checked as they are read
            reader(m)
    return PrepareReport(ok, "\n".join(lines))


@DATASETS.register("pascal-context", "PASCAL-Context multi-task data (PASCAL_MT.tgz): suites pascal-context, pascal-parts")
def prepare_context(data_root, download: bool = False) -> PrepareReport:
    lines = ["PASCAL-Context as packaged by Multi-Task-Learning-PyTorch (Vandenhende et al.; images: PASCAL VOC 2010, "
             "Flickr terms; annotations: Mottaghi et al. 2014, Chen et al. 2014 (Pascal-Part)).",
             *location("pascal-context").report(data_root)]  # fmt: skip
    if download:
        lines.append("--download is not supported for this source: fetch the archive above by hand")
    try:
        root = context_root(data_root)
        splits = {s: context_split(root, s, "semseg") for s in ("train", "val")}
        for s in ("train", "val"):
            context_split(root, s, "human_parts")
        return verify(lines + [f"found {root}"], "pascal-context", splits, semseg_reader)
    except BenchmarkError as e:
        return PrepareReport(False, "\n".join(lines + [location("pascal-context").missing(data_root, e)]))


@DATASETS.register("pascal-voc", "PASCAL VOC 2012 segmentation (VOCdevkit/VOC2012): suite pascal-voc")
def prepare_voc(data_root, download: bool = False) -> PrepareReport:
    lines = ["PASCAL VOC 2012 segmentation (Everingham et al. 2010; images under Flickr terms).",
             *location("pascal-voc").report(data_root)]  # fmt: skip
    if download:
        lines.append("--download: use torchvision.datasets.VOCSegmentation(root, year='2012', download=True) if the host is up")
    try:
        root = voc_root(data_root)
        splits = {s: voc_split(root, s) for s in ("train", "val")}
        return verify(lines + [f"found {root / 'VOCdevkit' / 'VOC2012'}"], "pascal-voc", splits, semseg_reader)
    except BenchmarkError as e:
        return PrepareReport(False, "\n".join(lines + [location("pascal-voc").missing(data_root, e)]))
