"""Records -> leaderboard tables. Always regenerated from results/runs/<suite>/*.json, never edited.

Scores per variant: ``selection`` (held-out train slice), ``id`` (mean of ID eval sets), one column per
OOD group (e.g. a corruption family, averaged over its severities; or ImageNet-A), and ``ood`` (mean of
the OOD groups, each group weighted equally). Two tables:

- variants: every (method, variant), mean ± stderr over seeds;
- selection: per method, the variant chosen on the selection split (what a user can honestly report)
  beside the oracle variant that maximises mean OOD accuracy (an upper bound no user can pick).
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pandas as pd

from benchmark.errors import BenchmarkError
from benchmark.records import atomic_write_bytes, load_records

KEYS = ["method", "backbone", "setting"]


def setting_of(config: dict) -> str:
    """Everything but the seed: runs that differ only in seed are repeats of one setting."""
    blob = json.dumps({k: v for k, v in config.items() if k != "seed"}, sort_keys=True, default=list)
    return hashlib.sha256(blob.encode()).hexdigest()[:6]


def long_frame(records: list[dict]) -> pd.DataFrame:
    rows = []
    for r in records:
        if r.get("status") != "done":
            continue
        cfg = r["config"]
        base = {"run_id": r["run_id"], "method": cfg["method"], "backbone": cfg["backbone"],
                "setting": setting_of(cfg), "seed": cfg["seed"]}  # fmt: skip
        rows += [{**base, **e} for e in r["evals"]]
    return pd.DataFrame(rows)


def variant_scores(long: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """One row per (run, variant): selection, id, each OOD group, ood mean. Returns (frame, ood groups)."""
    index = KEYS + ["seed", "run_id", "variant"]
    by_role = long.groupby(index + ["role"])["value"].mean().unstack("role")
    ood = long[long.role == "ood"]
    groups = list(dict.fromkeys(ood["group"]))  # suite order, not alphabetical
    per_group = ood.groupby(index + ["group"])["value"].mean().unstack("group").reindex(columns=groups)
    scores = pd.DataFrame(index=by_role.index)
    scores["selection"] = by_role.get("selection")
    scores["id"] = by_role.get("id")
    scores["ood"] = per_group.mean(axis=1) if groups else math.nan
    scores = scores.join(per_group)
    return scores.reset_index(), groups


def _mean_stderr(frame: pd.DataFrame, by: list[str], columns: list[str]) -> pd.DataFrame:
    grouped = frame.groupby(by, sort=False)
    mean = grouped[columns].mean()
    stderr = grouped[columns].std(ddof=1) / grouped[columns].count().pow(0.5)
    out = mean.add_suffix("_mean").join(stderr.add_suffix("_stderr"))
    out["seeds"] = grouped.size()
    return out.reset_index()


# A suite's rows may carry several metrics (segmentation: miou and pixel_acc); tables show the primary one.
METRIC_TITLES = {"miou": "mIoU", "acc": "Top-1 accuracy"}


def primary_metric(long: pd.DataFrame) -> str:
    """The first metric of METRIC_TITLES present in the records (mIoU for segmentation suites)."""
    present = set(long["metric"]) if "metric" in long else {"acc"}
    return next((m for m in METRIC_TITLES if m in present), "acc")


def primary_scores(records: list[dict]) -> tuple[pd.DataFrame, list[str], str]:
    """Per (run, variant) scores in the records' primary metric, the OOD groups, and that metric."""
    long = long_frame(records)
    if long.empty:
        raise BenchmarkError("no finished records to tabulate; run `benchmark run` first")
    metric = primary_metric(long)
    scores, groups = variant_scores(long[long["metric"] == metric])
    return scores, groups, metric


def tables(records: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame, list[str], str]:
    """(every variant, selected vs oracle picks, OOD groups, metric), each score mean ± stderr over seeds."""
    scores, groups, metric = primary_scores(records)
    columns = ["selection", "id", "ood", *groups]
    variants = _mean_stderr(scores, KEYS + ["variant"], columns)
    run_keys = KEYS + ["seed", "run_id"]
    # Per run: the variant with the best selection accuracy, and (oracle) the best mean OOD accuracy.
    picks = []
    for rule, col in (("selected", "selection"), ("oracle", "ood")):
        chosen = scores.loc[scores.groupby(run_keys, sort=False)[col].idxmax()].assign(pick=rule)
        picks.append(chosen)
    picked = pd.concat(picks)
    chosen_names = picked.groupby(KEYS + ["pick"], sort=False)["variant"].agg(lambda v: "/".join(sorted(set(v))))
    selection = _mean_stderr(picked, KEYS + ["pick"], columns)
    selection.insert(len(KEYS) + 1, "variant", [chosen_names[tuple(r)] for r in selection[KEYS + ["pick"]].values])
    return variants, selection, groups, metric


def _cell(mean: float, stderr: float, seeds: int) -> str:
    if pd.isna(mean):
        return "–"
    return f"{100 * mean:.1f}" if seeds < 2 or pd.isna(stderr) else f"{100 * mean:.1f} ± {100 * stderr:.1f}"


def _label(frame: pd.DataFrame) -> pd.Series:
    """Method name, suffixed with the setting hash only where one method ran with several settings."""
    settings = frame.groupby("method")["setting"].transform("nunique")
    return frame["method"].where(settings == 1, frame["method"] + "#" + frame["setting"])


def to_markdown(frame: pd.DataFrame, label_cols: list[str], columns: list[str]) -> str:
    header = ["method", *label_cols, "seeds", *columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    labels = _label(frame)
    for (_, r), label in zip(frame.iterrows(), labels):
        cells = [label, *[str(r[c]) for c in label_cols], str(r["seeds"])]
        cells += [_cell(r[f"{c}_mean"], r[f"{c}_stderr"], r["seeds"]) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# Suites whose OOD sets are the released ImageNet-C: mCE (Hendrycks & Dietterich 2019) against this baseline.
MCE_BASELINES = {"imagenet-c": "alexnet"}


def mce_section(suite: str, records: list[dict]) -> str:
    """Mean corruption error per (method, backbone, variant), averaged over seeds; lower is better."""
    baseline = MCE_BASELINES.get(suite)
    if baseline is None:
        return ""
    from benchmark.data.imagenet_c import mce

    per: dict[tuple, list[float]] = {}
    for r in records:
        if r.get("status") != "done":
            continue
        by_variant: dict[str, list[dict]] = {}
        for row in r["evals"]:
            by_variant.setdefault(row["variant"], []).append(row)
        for variant, rows in by_variant.items():
            per.setdefault((r["config"]["method"], r["config"]["backbone"], variant), []).append(mce(rows, baseline)["mce"])
    lines = [f"## mCE vs {baseline} (%, lower is better)", "", "| method | backbone | variant | seeds | mCE |", "|---|---|---|---|---|"]
    lines += [f"| {m} | {b} | {v} | {len(x)} | {sum(x) / len(x):.1f} |" for (m, b, v), x in per.items()]
    return "\n".join(lines) + "\n\n"


def render(suite: str, records: list[dict]) -> tuple[str, pd.DataFrame]:
    variants, selection, groups, metric = tables(records)
    columns = ["selection", "id", "ood", *groups]
    text = (
        f"# Leaderboard: {suite}\n\n"
        f"{METRIC_TITLES[metric]} (%), mean ± standard error over seeds. "
        "`selection` is the held-out train slice used "
        "only to choose variants; `ood` is the mean over the OOD groups.\n\n"
        "## Model selection: chosen on the selection split vs oracle (best mean OOD)\n\n"
        + to_markdown(selection, ["backbone", "pick", "variant"], ["id", "ood"])
        + "\n\n## Every variant\n\n"
        + to_markdown(variants, ["backbone", "variant"], columns)
        + "\n\n"
        + mce_section(suite, records)
        + "Generated by `benchmark leaderboard` from results/runs/" + suite + "/; do not edit.\n"
    )
    csv = pd.concat([variants.assign(table="variants"), selection.assign(table="selection")], ignore_index=True)
    return text, csv


def write(results: Path, suite: str) -> tuple[Path, str]:
    text, csv = render(suite, load_records(results, suite))
    md_path = Path(results) / f"{suite}.md"
    atomic_write_bytes(md_path, text.encode())
    atomic_write_bytes(Path(results) / f"{suite}.csv", csv.to_csv(index=False, float_format="%.6g").encode())
    return md_path, text
