"""ImageNet-C (Hendrycks & Dietterich, ICLR 2019) as published: the ``imagenet-c`` suite and mCE.

Card: datasets/imagenet-c.toml; AlexNet baseline errors: datasets/imagenet-c/baselines.toml.
- ID: the ``imagenet`` suite's parts (benchmark/data/imagenet.py): train minus a seeded per-class
  selection slice, selection, and ImageNet val as the reported ID set;
- OOD: the released files, ``<root>/<corruption>/<severity>/<wnid>/*.JPEG`` (15 corruptions x 5
  severities x 50,000 val images, already resized to 256 and centre-cropped to 224), one eval set per
  (corruption, severity) named ``<corruption>@<severity>``, grouped by corruption;
- mCE: ``mce(rows, baseline)``: CE_c = sum_s err_s / sum_s err_s(baseline); mCE = mean_c CE_c (x100).
The files are not regenerated here: ImageNet-C was made with the authors' own code and JPEG pipeline,
and imagecorruptions' output is close to, not identical with, them (so results stay comparable with
published ones). Corrupted variants of other suites come from benchmark/corruption_cache.py instead.
"""
from __future__ import annotations

import functools
import tomllib
from pathlib import Path

import numpy as np

from benchmark import corruptions
from benchmark.data import DATASETS, SUITES, PrepareReport, SuiteOptions
from benchmark.data.base import EvalSet, Suite
from benchmark.data.folder_utils import (CARDS_DIR, ImageListDataset, Location, check_count, check_sizes,
                                         parse_choice, scan_classes, subsample, verify_images)  # fmt: skip
from benchmark.data.imagenet import imagenet_suite_around, imagenet_wnids, resolve_universe
from benchmark.errors import BenchmarkError

# Which release archive (https://zenodo.org/record/2235448) holds each corruption.
ARCHIVES = {
    "noise.tar": ("gaussian_noise", "shot_noise", "impulse_noise"),
    "blur.tar": ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur"),
    "weather.tar": ("snow", "frost", "fog", "brightness"),
    "digital.tar": ("contrast", "elastic_transform", "pixelate", "jpeg_compression"),
}
IMAGES_PER_SET = 50_000  # every (corruption, severity) is the whole ImageNet val set
PREPARE_DECODE_PER_SET = 100  # `prepare` decodes a seeded sample of each set (all 3.75M would take hours)
LOCATION = Location(
    "ImageNet-C", ["imagenet-c", "ImageNet-C"], "IMAGENET_C_DIR",
    "download noise.tar, blur.tar, weather.tar and digital.tar from https://zenodo.org/record/2235448 and "
    "unpack them into one folder, so that <dir>/<corruption>/<severity 1-5>/<wnid>/*.JPEG",
)  # fmt: skip
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
    return next(a for a, names in ARCHIVES.items() if corruption in names)


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
            if full:
                check_count(title, len(samples), IMAGES_PER_SET)
            out[name, s] = samples
    return out


@SUITES.register("imagenet-c", "ImageNet-1k (ID) vs the published ImageNet-C, 15 corruptions x 5 severities (OOD); mCE")
def imagenet_c_suite(opts: SuiteOptions) -> Suite:
    sizes = check_sizes("imagenet-c", opts.sizes, DEFAULT_SIZES)
    names = parse_choice(sizes["corruptions"], corruptions.CORRUPTIONS, "corruptions")
    severities = _int_choice(sizes["severities"], corruptions.SEVERITIES, "severities")
    universe = resolve_universe(sizes["wnids"])
    full = len(universe) == len(imagenet_wnids())
    corrupted = scan(LOCATION.find(opts.data_root), {w: i for i, w in enumerate(universe)}, names, severities, full)
    ood = []
    for i, ((name, s), samples) in enumerate(corrupted.items(), 1):
        data = ImageListDataset(subsample(samples, sizes["eval_max"], sizes["split_seed"] + i), opts.eval_transform)
        ood.append(EvalSet(f"{name}@{s}", "ood", data, group=name))
    return imagenet_suite_around("imagenet-c", opts, sizes, universe, ood, {"mce_baseline": "alexnet"})


@functools.cache
def baselines() -> dict[str, dict]:
    """Named baselines' top-1 error per corruption (mean over severities 1-5), from datasets/imagenet-c/."""
    path = CARDS_DIR / "imagenet-c" / "baselines.toml"
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise BenchmarkError(f"cannot read the mCE baselines {path}: {e}") from None


def mce(rows, baseline: str = "alexnet") -> dict:
    """Mean corruption error (Hendrycks & Dietterich 2019, eq. in sec. 4), in percent.

    ``rows``: eval rows as records hold them ({"eval": "fog@3", "metric": "acc", "value": 0.61, ...});
    rows that are not ``<corruption>@<severity>`` accuracies are ignored. Every one of the 15
    corruptions needs all 5 severities (CE sums over them). The baseline's per-corruption error is a mean
    over severities, so its sum is 5 times it. Returns {"mce": float, "ce": {corruption: CE_c}}.
    """
    table = baselines()
    if baseline not in table:
        raise BenchmarkError(f"unknown mCE baseline {baseline!r}; known: {', '.join(table)}")
    errors: dict[str, dict[int, float]] = {}
    for row in rows:
        name, _, severity = str(row.get("eval", "")).partition("@")
        if row.get("metric", "acc") == "acc" and name in corruptions.CORRUPTIONS and severity.isdigit():
            errors.setdefault(name, {})[int(severity)] = 1.0 - float(row["value"])
    missing = [f"{c}@{s}" for c in corruptions.CORRUPTIONS for s in corruptions.SEVERITIES if s not in errors.get(c, {})]
    if missing:
        raise BenchmarkError(f"mCE needs all 15 corruptions x 5 severities; missing {len(missing)}: {', '.join(missing[:5])}")
    base = table[baseline]["error"]
    ce = {c: 100.0 * sum(errors[c].values()) / (len(corruptions.SEVERITIES) * base[c]) for c in corruptions.CORRUPTIONS}
    return {"mce": float(np.mean(list(ce.values()))), "ce": ce}


@DATASETS.register("imagenet-c", "ImageNet-C as released ($IMAGENET_C_DIR or --data-root/imagenet-c)")
def prepare(data_root: Path | None, download: bool = False, progress: bool = True) -> PrepareReport:
    where = ", ".join(str(d) for d in LOCATION.candidates(data_root)) or f"--data-root/imagenet-c or ${LOCATION.env_var}"
    lines = [f"ImageNet-C: {LOCATION.how_to_get}.", f"Looked in: {where} (card: datasets/imagenet-c.toml)",
             "The imagenet-c suite also needs ImageNet-1k (`benchmark prepare imagenet`) for train/selection/ID."]  # fmt: skip
    if download:
        lines.append("automatic download is not offered (~70 GB from Zenodo); follow the first line")
    try:
        root = LOCATION.find(data_root)
        universe = imagenet_wnids()
        found = scan(root, {w: i for i, w in enumerate(universe)}, corruptions.CORRUPTIONS, corruptions.SEVERITIES, full=True)
        rng = np.random.default_rng(0)
        for (name, s), samples in found.items():
            sample = [samples[i][0] for i in rng.choice(len(samples), min(PREPARE_DECODE_PER_SET, len(samples)), replace=False)]
            bad = verify_images(sample, f"ImageNet-C {name}@{s}", progress)
            if bad:
                raise BenchmarkError(f"unreadable images in ImageNet-C {name}@{s}, e.g. {bad[0]}")
        lines.append(f"ok  75 sets of {IMAGES_PER_SET} images in 1000 wnid folders; {PREPARE_DECODE_PER_SET} per set decoded")
    except BenchmarkError as e:
        return PrepareReport(False, "\n".join(lines + [f"missing/bad: {e}"]))
    return PrepareReport(True, "\n".join(lines))
