"""`benchmark reproduce`: paper tables with the published numbers beside ours, regenerated from records.

A table spec says which suite/backbone/method/variant of ours answers each published row, and which
of our per-variant scores (see leaderboard.variant_scores: ``id``, ``ood``, or an OOD group) answers
each published column. Cells we have not run say so; nothing is filled in by hand.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchmark.report import leaderboard
from benchmark.errors import BenchmarkError
from benchmark.files import atomic_write_bytes
from benchmark.report.records import load_records
from benchmark.resources import shipped



@dataclass(frozen=True)
class TableSpec:
    title: str
    csv: str
    suite: str
    key_columns: tuple[str, ...]          # CSV columns naming a row (e.g. backbone, method)
    rows: dict[tuple, tuple[str, str, str]]  # row key -> (our backbone, method, variant)
    columns: dict[str, str]               # published column -> our score column
    note: str = ""


TABLES: dict[str, TableSpec] = {
    "tpgm-imagenet": TableSpec(
        "TPGM (CVPR 2023), CLIP ViT-B/16 fine-tuned on ImageNet: top-1 (%)", "tpgm_imagenet.csv", "imagenet",
        ("method",),
        {("ft",): ("clip:ViT-B-16/openai", "ft", "ft"),
         ("zero-shot",): ("clip:ViT-B-16/openai", "zeroshot", "zeroshot"),
         ("wise-ft-0.5",): ("clip:ViT-B-16/openai", "wise-ft", "wise-ft@0.5"),
         ("tpgm",): ("clip:ViT-B-16/openai", "tpgm", "tpgm-posthoc")},
        {"imagenet": "id", "imagenet-v2": "v2", "imagenet-a": "a", "imagenet-r": "r", "imagenet-sketch": "sketch"},
        "TPGM's ImageNet ViT recipe is post-hoc projection after FT (our variant tpgm-posthoc).",
    ),
    "tpgm-domainnet": TableSpec(
        "TPGM (CVPR 2023), DomainNet, train on real (100%): top-1 (%)", "tpgm_domainnet.csv", "domainnet",
        ("backbone", "method"),
        {("clip-rn50", "ft"): ("clip:RN50/openai", "ft", "ft"),
         ("clip-rn50", "tpgm"): ("clip:RN50/openai", "tpgm", "tpgm"),
         ("mocov3-rn50", "ft"): ("timm:resnet50.mocov3", "ft", "ft"),
         ("mocov3-rn50", "tpgm"): ("timm:resnet50.mocov3", "tpgm", "tpgm")},
        {"real": "id", "sketch": "sketch", "painting": "painting", "infograph": "infograph", "clipart": "clipart",
         "ood_avg": "ood"},
        "MoCo-v3 ResNet-50 weights are not in timm; pass a local checkpoint as timm:resnet50@<file> and "
        "rename the backbone in this spec if you run it.",
    ),
}  # fmt: skip


def read_reference(spec: TableSpec) -> tuple[str, pd.DataFrame]:
    path = shipped("reference", spec.csv)
    lines = path.read_text().splitlines()
    source = lines[0].lstrip("# ").strip().removeprefix("source:").strip()
    header = lines[1].lstrip("# ").split(",")
    frame = pd.DataFrame(list(csv.reader(lines[2:])), columns=header)
    return source, frame


def ours(spec: TableSpec, recs: list[dict]) -> pd.DataFrame:
    """Per (backbone, method, variant): mean of each score over seeds, the seed count and budget departures."""
    if not recs:
        return pd.DataFrame()
    scores, _, _ = leaderboard.primary_scores(recs)
    grouped = scores.groupby(["backbone", "method", "variant"])
    budget = grouped["budget"].agg(lambda b: " / ".join(sorted(set(b) - {""})))
    return grouped.mean(numeric_only=True).join(grouped.size().rename("seeds")).join(budget)


def render(name: str, results: Path) -> str:
    if name not in TABLES:
        raise BenchmarkError(f"unknown table {name!r}; valid: {', '.join(TABLES)}")
    spec = TABLES[name]
    source, published = read_reference(spec)
    recs = load_records(results, spec.suite)
    mine = ours(spec, recs)
    columns = list(spec.columns)
    lines = [f"# {spec.title}", "", f"Published: {source}.", f"Ours: suite `{spec.suite}`, from results/runs/{spec.suite}/.", ""]
    lines += ["| row | source | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 2)]
    for _, row in published.iterrows():
        key = tuple(row[c] for c in spec.key_columns)
        label = " / ".join(key)
        lines.append(f"| {label} | published | " + " | ".join(row[c] or "–" for c in columns) + " |")
        target = spec.rows.get(key)
        if target is None or target not in mine.index:
            what = "no mapping" if target is None else f"not run ({target[0]}, {target[1]}, variant {target[2]})"
            lines.append(f"| {label} | ours | " + " | ".join([what] + [""] * (len(columns) - 1)) + " |")
            continue
        got, seeds = mine.loc[target], int(mine.loc[target, "seeds"])
        cells = [f"{100 * got[spec.columns[c]]:.2f}" if pd.notna(got.get(spec.columns[c])) else "–" for c in columns]
        budget = f" [budget: {got['budget']}]" if got["budget"] else ""
        lines.append(f"| {label} | ours ({seeds} seed{'s' if seeds > 1 else ''}){budget} | " + " | ".join(cells) + " |")
    if spec.note:
        lines += ["", spec.note]
    mixed = leaderboard.code_section(recs) + leaderboard.mixed_section(recs, leaderboard.data_label, "data", "copies of the data")
    if mixed:
        lines += ["", mixed.strip()]
    lines += ["", "Generated by `benchmark reproduce`; do not edit."]
    return "\n".join(lines) + "\n"


def write(results: Path, names: list[str]) -> list[tuple[Path, str]]:
    out = []
    for name in names:
        text = render(name, results)
        path = Path(results) / "reproduce" / f"{name}.md"
        atomic_write_bytes(path, text.encode())
        out.append((path, text))
    return out
