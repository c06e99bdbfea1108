"""ImageNet-C (Hendrycks & Dietterich, ICLR 2019) as published: the ``imagenet-c`` suite and mCE.

Card: datasets/imagenet-c.toml; AlexNet baseline errors: datasets/imagenet-c/baselines.toml.
- ID: the ``imagenet`` suite's parts (benchmark/data/imagenet.py): train minus a seeded per-class
  selection slice, selection, and ImageNet val as the reported ID set;
- OOD: the released files, ``<root>/<corruption>/<severity>/<wnid>/*.JPEG`` (15 corruptions x 5
  severities x 50,000 val images, already resized to 256 and centre-cropped to 224), one eval set per
  (corruption, severity) named ``<corruption>@<severity>``, grouped by corruption;
- mCE: computed from records by the report (benchmark/report/mce.py).
The files are not regenerated here: ImageNet-C was made with the authors' own code and JPEG pipeline,
and imagecorruptions' output is close to, not identical with, them (so results stay comparable with
published ones). Corrupted variants of other suites come from benchmark/corruption/cache.py instead.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.corruption import corruptions
from benchmark.data import DATASETS, PrepareReport, SuiteOptions, register_suite
from benchmark.data.base import EvalSet, Suite
from benchmark.data.cards import count, fact, location
from benchmark.data.folders import ImageListDataset, check_count, parse_choice, scan_classes, subsample, verify_images
from benchmark.data.imagenet import CLIP_SUITE, finders, imagenet_suite_around, imagenet_wnids, resolve_universe
from benchmark.errors import BenchmarkError

CARD = "imagenet-c"  # datasets/imagenet-c.toml: images per set, the archive of each corruption, where to look
PREPARE_DECODE_PER_SET = 100  # `prepare` decodes a seeded sample of each set (all 3.75M would take hours)
DEFAULT_SIZES = {
    "corruptions": corruptions.CORRUPTIONS,  # which of the 15 to load (all by default; mCE needs all)
    "severities": corruptions.SEVERITIES,    # which of 1-5 (all by default; CE needs all five)
    "eval_max": None,             # cap on images per eval set, seeded subsample (None: all; for quick runs)
    "selection_per_class": 10,    # as the imagenet suite (benchmark/data/imagenet.py)
    "train_per_class": None,      # as the imagenet suite
    "wnids": None,                # as the imagenet suite: restrict the label space
    "split_seed": 0,              # fixed across run seeds: seeds vary training, not the data
}  # fmt: skip


def archive_of(corruption: str) -> str:
    """The release archive (https://zenodo.org/record/2235448) holding a corruption."""
    return next(a for a, names in fact(CARD, "archives").items() if corruption in names)


def _int_choice(value, valid, key) -> tuple[int, ...]:
    """Severities given as 3, (1, 3) or "1,3" (parse_choice reads the str of each item)."""
    return tuple(int(v) for v in parse_choice((value,) if isinstance(value, int) else value, [str(v) for v in valid], key))


def scan(root: Path, pos: dict[str, int], names, severities, full: bool) -> dict[tuple[str, int], list]:
    """(path, label) samples of every requested (corruption, severity) folder; partial copies fail."""
    out = {}
    for name in names:
        if not (root / name).is_dir():
            raise BenchmarkError(f"ImageNet-C at {root} has no {name}/ folder: unpack {archive_of(name)} from "
                                 f"https://zenodo.org/record/2235448 there")  # fmt: skip
        for s in severities:
            title = f"ImageNet-C {name}@{s}"
            if not (root / name / str(s)).is_dir():
                raise BenchmarkError(f"{title}: {root / name / str(s)} is missing; re-unpack {archive_of(name)}")
            samples = scan_classes(root / name / str(s), pos, title)
            if full:  # every (corruption, severity) is the whole ImageNet val set
                check_count(title, len(samples), count(CARD, "per_set"))
            out[name, s] = samples
    return out


@register_suite("imagenet-c", "ImageNet-1k (ID) vs the published ImageNet-C, 15 corruptions x 5 severities (OOD); mCE",
                sizes=DEFAULT_SIZES, needs=lambda sizes: {**finders(["imagenet"]), CARD: location(CARD).find}, **CLIP_SUITE)
def imagenet_c_suite(opts: SuiteOptions) -> Suite:
    sizes = opts.sizes
    names = parse_choice(sizes["corruptions"], corruptions.CORRUPTIONS, "corruptions")
    severities = _int_choice(sizes["severities"], corruptions.SEVERITIES, "severities")
    universe = resolve_universe(sizes["wnids"])
    full = len(universe) == len(imagenet_wnids())
    corrupted = scan(location(CARD).find(opts.data_root), {w: i for i, w in enumerate(universe)}, names, severities, full)
    ood = []
    for i, ((name, s), samples) in enumerate(corrupted.items(), 1):
        data = ImageListDataset(subsample(samples, sizes["eval_max"], sizes["split_seed"] + i), opts.eval_transform)
        ood.append(EvalSet(f"{name}@{s}", "ood", data, group=name))
    return imagenet_suite_around("imagenet-c", opts, sizes, universe, ood, {"mce_baseline": "alexnet"})


@DATASETS.register("imagenet-c", "ImageNet-C as released: the OOD sets of suite imagenet-c")
def prepare(data_root: Path | None, download: bool = False, progress: bool = True) -> PrepareReport:
    loc = location(CARD)
    lines = loc.report(data_root) + ["The imagenet-c suite also needs ImageNet-1k (`benchmark prepare imagenet`) for train/selection/ID."]
    if download:
        lines.append("automatic download is not offered (~70 GB from Zenodo); follow the first line")
    try:
        root = loc.find(data_root)
        universe = imagenet_wnids()
        found = scan(root, {w: i for i, w in enumerate(universe)}, corruptions.CORRUPTIONS, corruptions.SEVERITIES, full=True)
        rng = np.random.default_rng(0)
        for (name, s), samples in found.items():
            sample = [samples[i][0] for i in rng.choice(len(samples), min(PREPARE_DECODE_PER_SET, len(samples)), replace=False)]
            bad = verify_images(sample, f"ImageNet-C {name}@{s}", progress)
            if bad:
                raise BenchmarkError(f"unreadable images in ImageNet-C {name}@{s}, e.g. {bad[0]}")
        lines.append(f"ok  {len(found)} sets of {count(CARD, 'per_set')} images in 1000 wnid folders; {PREPARE_DECODE_PER_SET} per set decoded")
    except BenchmarkError as e:
        return PrepareReport(False, "\n".join(lines + [loc.missing(data_root, e)]))
    return PrepareReport(True, "\n".join(lines))
