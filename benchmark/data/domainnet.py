"""DomainNet (Peng et al., ICCV 2019): the ``domainnet`` suite, train on real, test on four other domains.

Card: datasets/domainnet.toml; class list: datasets/domainnet/classes.txt (345 names, label order of the
official split files). Protocol (TPGM / FTP): ID = real; train on real_train minus a seeded 10% held out
as the selection split (their 90/10 split of real-train), report real_test; OOD = the sketch, painting,
infograph and clipart test splits. quickdraw is off by default (TPGM/FTP do not report it); ``--size
evals=sketch,painting,infograph,clipart,quickdraw`` adds it as its own OOD group, which then enters the
OOD mean. Every split-file line is checked: path ``<domain>/<class>/<file>``, label in 0..344, and the
class folder equals the class list's name for that label, so labels can never silently shift.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

from benchmark.data import DATASETS, PrepareReport, SuiteOptions, register_suite
from benchmark.data.base import EvalSet, Suite, disjoint_split
from benchmark.data.cards import count, fact, location
from benchmark.data.folders import ImageListDataset, check_count, parse_choice, subsample, verify_images
from benchmark.errors import BenchmarkError
from benchmark.resources import shipped

DOMAINS = ("clipart", "infograph", "painting", "quickdraw", "real", "sketch")
ID_DOMAIN = "real"
OOD_DOMAINS = ("sketch", "painting", "infograph", "clipart")  # TPGM README table order
CARD = "domainnet"  # datasets/domainnet.toml: lines per split file, number of classes, where to look
DEFAULT_SIZES = {
    "evals": OOD_DOMAINS,        # OOD test domains; add quickdraw explicitly
    "selection_fraction": 0.1,   # of real_train held out for selection (TPGM/FTP's 90/10 split)
    "train_max": None,           # cap on training images, seeded subsample (None: all)
    "eval_max": None,            # cap on images per eval set, seeded subsample (None: all)
    "classes": None,             # restrict the label space to some class names (cheap runs, tests)
    "split_seed": 0,             # fixed across run seeds: seeds vary training, not the data
}  # fmt: skip


@functools.cache
def classes() -> tuple[str, ...]:
    names = tuple(shipped("datasets", "domainnet", "classes.txt").read_text().split())
    expected = fact(CARD, "num_classes")
    if len(names) != expected or len(set(names)) != expected:
        raise BenchmarkError(f"datasets/domainnet/classes.txt lists {len(names)} classes; expected {expected} distinct")
    return names


def split_file(root: Path, domain: str, split: str) -> Path:
    for d in (root, root / "txt"):
        if (d / f"{domain}_{split}.txt").is_file():
            return d / f"{domain}_{split}.txt"
    raise BenchmarkError(
        f"DomainNet split file {domain}_{split}.txt not in {root} or {root / 'txt'}; "
        f"get it from {fact(CARD, 'split_files_url')}/{domain}_{split}.txt"
    )


def read_split(root: Path, domain: str, split: str, label_of: dict[int, int], full: bool) -> list[tuple[str, int]]:
    """(path, label) for one official split file, every line validated; labels remapped by label_of.

    With the full label space, the line count must match the card and real_train must cover every class.
    Image files are checked against one directory listing per class folder (cheap).
    """
    path = split_file(root, domain, split)
    names = classes()
    samples, listings, seen = [], {}, set()
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        where = f"{path}:{n}"
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise BenchmarkError(f"{where}: expected '<domain>/<class>/<file> <label>', got {line.strip()!r}")
        rel, label = parts[0], int(parts[1])
        bits = rel.split("/")
        if len(bits) != 3 or bits[0] != domain:
            raise BenchmarkError(f"{where}: path {rel!r} is not {domain}/<class>/<file>")
        if not 0 <= label < len(names):
            raise BenchmarkError(f"{where}: label {label} out of range 0..{len(names) - 1}")
        if names[label] != bits[1]:
            raise BenchmarkError(f"{where}: label {label} is {names[label]!r} in the class list but the folder is {bits[1]!r}")
        seen.add(label)
        if label not in label_of:
            continue
        folder = root / domain / bits[1]
        if folder not in listings:
            listings[folder] = set(os.listdir(folder)) if folder.is_dir() else set()
        if bits[2] not in listings[folder]:
            raise BenchmarkError(f"{where}: image {root / rel} is missing (partial or wrong copy of {domain})")
        samples.append((str(root / rel), label_of[label]))
    title = f"DomainNet {domain}_{split}"
    if full:
        check_count(title, n_lines(path), count(CARD, f"{domain}_{split}"))
        if (domain, split) == (ID_DOMAIN, "train") and len(seen) != len(names):
            raise BenchmarkError(f"{title} covers {len(seen)} of {len(names)} classes: wrong or partial split file")
    if not samples:
        raise BenchmarkError(f"{title} has no images of the chosen classes")
    return samples


def n_lines(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip())


def resolve_classes(value) -> list[int]:
    """Labels (official indices) in the label space: all 345, or those named by --size classes=..."""
    if value is None:
        return list(range(len(classes())))
    chosen = set(parse_choice(value, classes(), "classes"))
    if len(chosen) < 2:
        raise BenchmarkError("classes= needs at least two DomainNet classes")
    return [i for i, name in enumerate(classes()) if name in chosen]


# The official TPGM DomainNet recipe (github.com/PotatoTian/TPGM main_finetune.py and the README's commands),
# which FTP (github.com/GT-RIPL/FTP) reuses, for every method, as both papers train their FT baseline: SGD
# nesterov momentum 0.9, lr 1e-2, wd 5e-4, cosine, 50 epochs, batch 64 x 4 GPUs, no warm-up, no clipping.
RECIPE = {"optimizer": "sgd", "lr": 1e-2, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4, "epochs": 50,
          "batch_size": 256, "warmup_steps": 0, "grad_clip": 0.0, "eval_batch_size": 256}  # fmt: skip


def ood_domains(sizes: dict) -> list[str]:
    return parse_choice(sizes["evals"], [d for d in DOMAINS if d != ID_DOMAIN], "evals")


def find_root(ood: list[str], data_root) -> Path:
    """The DomainNet folder holding the ID domain and these OOD domains."""
    return location(CARD).find(data_root, lambda d: all((d / x).is_dir() for x in (ID_DOMAIN, *ood)))


# TPGM's DomainNet backbone with a text tower (its CLIP ResNet-50), at the papers' 224 px.
@register_suite("domainnet", "DomainNet: train on real (ID), test on sketch/painting/infograph/clipart (OOD); needs the data",
                recipe=RECIPE, sizes=DEFAULT_SIZES, backbone="clip:RN50/openai", image_size=224,
                methods=("zeroshot", "lp", "ft", "lp-ft", "wise-ft", "l2-sp", "tpgm", "ftp", "fsr", "lipsum-ft"),
                needs=lambda sizes: {"domainnet": functools.partial(find_root, ood_domains(sizes))})
def domainnet_suite(opts: SuiteOptions) -> Suite:
    sizes = opts.sizes
    ood = ood_domains(sizes)
    labels = resolve_classes(sizes["classes"])
    label_of = {lab: i for i, lab in enumerate(labels)}
    full = len(labels) == len(classes())
    root = find_root(ood, opts.data_root)
    seed = sizes["split_seed"]

    pool = read_split(root, ID_DOMAIN, "train", label_of, full)
    n_sel = round(sizes["selection_fraction"] * len(pool))
    fit_idx, sel_idx = disjoint_split(len(pool), n_sel, seed)
    train = subsample([pool[i] for i in fit_idx], sizes["train_max"], seed)
    selection = [pool[i] for i in sel_idx]

    def test_set(domain, role, offset):
        samples = subsample(read_split(root, domain, "test", label_of, full), sizes["eval_max"], seed + offset)
        return EvalSet(domain, role, ImageListDataset(samples, opts.eval_transform))

    evals = [test_set(ID_DOMAIN, "id", 0)] + [test_set(d, "ood", i) for i, d in enumerate(ood, 1)]
    return Suite(
        name="domainnet",
        classnames=[classes()[i].replace("_", " ") for i in labels],
        train=ImageListDataset(train, opts.train_transform),
        selection=ImageListDataset(selection, opts.eval_transform),
        evals=evals,
        notes={"sizes": {k: list(v) if isinstance(v, tuple) else v for k, v in sizes.items()},
               "classes": "all 345" if full else [classes()[i] for i in labels],
               "split": f"real_train: {len(train)} train / {len(selection)} selection (seed {seed})"},
    )  # fmt: skip


@DATASETS.register("domainnet", "DomainNet, six domains + official split files: suite domainnet")
def prepare(data_root: Path | None, download: bool = False, progress: bool = True) -> PrepareReport:
    lines = location(CARD).report(data_root)
    if download:
        lines.append("automatic download is not offered; fetch the files listed above")
    ok = True
    try:
        root = location(CARD).find(data_root)
    except BenchmarkError as e:
        return PrepareReport(False, "\n".join(lines + [location(CARD).missing(data_root, e)]))
    every = {i: i for i in range(len(classes()))}
    for domain in DOMAINS:
        needed = domain == ID_DOMAIN or domain in OOD_DOMAINS
        for split in ("train", "test"):
            title = f"DomainNet {domain}_{split}"
            try:
                samples = read_split(root, domain, split, every, full=True)
                bad = verify_images([p for p, _ in samples], title, progress)
                if bad:
                    raise BenchmarkError(f"{len(bad)} unreadable images in {title}, e.g. {bad[0]}")
                lines.append(f"ok  {title}: {len(samples)} images (card: {count(CARD, f'{domain}_{split}')}), every image decodes")
            except BenchmarkError as e:
                ok = ok and not needed
                tag = "missing/bad" if needed else "optional (only for evals=...,quickdraw)"
                lines.append(f"{tag}: {e}")
    return PrepareReport(ok, "\n".join(lines))
