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
from benchmark.files import atomic_write_bytes
from benchmark.report.mce import mce
from benchmark.report.records import code_label, scan_records

KEYS = ["method", "backbone", "setting", "budget"]


def setting_of(config: dict) -> str:
    """Everything but the seed: runs that differ only in seed are repeats of one setting."""
    blob = json.dumps({k: v for k, v in config.items() if k != "seed"}, sort_keys=True, default=list)
    return hashlib.sha256(blob.encode()).hexdigest()[:6]


def departure_text(key: str, d: dict) -> str:
    return f"{key} {d['value']} (suite {d['suite']})"


def shared_departures(records: list[dict]) -> dict:
    """Departures every record in the table has alike (e.g. --epochs 1 given for all): said once, not per row."""
    common = None
    for r in records:
        mine = {k: repr(d) for k, d in r.get("departures", {}).items()}
        common = mine if common is None else {k: v for k, v in common.items() if mine.get(k) == v}
    return {k: records[0]["departures"][k] for k in common or {}}


def budget_label(departures: dict, shared: dict) -> str:
    """How a row shows its departures from the suite's budget, e.g. 'epochs 10 (suite 50)'; '' when none."""
    return "; ".join(departure_text(k, d) for k, d in sorted(departures.items()) if k not in shared)


def method_order(names) -> list[str]:
    """Methods in the registry's declared order (baselines first); unregistered names after, as found."""
    from methods import METHODS

    declared = [m for m in METHODS.names() if m in set(names)]
    return declared + [m for m in dict.fromkeys(names) if m not in declared]


def long_frame(records: list[dict]) -> pd.DataFrame:
    order = method_order([r["config"]["method"] for r in records])
    shared = shared_departures(records)
    rows = []
    for r in sorted(records, key=lambda r: (order.index(r["config"]["method"]), r["run_id"])):
        cfg = r["config"]
        base = {"run_id": r["run_id"], "method": cfg["method"], "backbone": cfg["backbone"],
                "setting": setting_of(cfg), "budget": budget_label(r.get("departures", {}), shared), "seed": cfg["seed"]}  # fmt: skip
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
    # A run missing an OOD group has no OOD mean (NaN), rather than a mean over fewer groups than the others'.
    scores["ood"] = per_group.mean(axis=1, skipna=False) if groups else math.nan
    scores = scores.join(per_group)
    return scores.reset_index(), groups


def _mean_stderr(frame: pd.DataFrame, by: list[str], columns: list[str]) -> pd.DataFrame:
    grouped = frame.groupby(by, sort=False)
    mean = grouped[columns].mean()
    stderr = grouped[columns].std(ddof=1) / grouped[columns].count().pow(0.5)
    out = mean.add_suffix("_mean").join(stderr.add_suffix("_stderr")).join(grouped[columns].count().add_suffix("_n"))
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
        # A run without a score in `col` still gets a pick (its first variant), so it is counted, not dropped.
        best = scores[col].fillna(-math.inf).groupby([scores[k] for k in run_keys], sort=False).idxmax()
        chosen = scores.loc[best].assign(pick=rule)
        picks.append(chosen)
    picked = pd.concat(picks)
    chosen_names = picked.groupby(KEYS + ["pick"], sort=False)["variant"].agg(lambda v: "/".join(sorted(set(v))))
    selection = _mean_stderr(picked, KEYS + ["pick"], columns)
    selection.insert(len(KEYS) + 1, "variant", [chosen_names[tuple(r)] for r in selection[KEYS + ["pick"]].values])
    return in_method_order(variants), in_method_order(selection, within="pick"), groups, metric


def in_method_order(frame: pd.DataFrame, within: str | None = None) -> pd.DataFrame:
    """Rows by method in the declared order (stable), inside blocks of `within` kept in their order."""
    rank = {m: i for i, m in enumerate(method_order(list(frame["method"])))}
    block = {v: i for i, v in enumerate(dict.fromkeys(frame[within]))} if within else {}
    keys = ([within] if within else []) + ["method"]
    order = {within: block, "method": rank}
    return frame.sort_values(keys, key=lambda col: col.map(order[col.name]), kind="stable").reset_index(drop=True)


def _cell(mean: float, stderr: float, seeds: int, n: int) -> str:
    """mean ± stderr; a mean over fewer seeds than the row's says over how many."""
    if pd.isna(mean):
        return "–"
    text = f"{100 * mean:.1f}" if n < 2 or pd.isna(stderr) else f"{100 * mean:.1f} ± {100 * stderr:.1f}"
    return text if n == seeds else f"{text} ({n} of {seeds} seeds)"


def _label(frame: pd.DataFrame) -> pd.Series:
    """Method name, suffixed with the setting hash only where one method ran with several settings, and with
    its departures from the suite's training budget where it has any."""
    settings = frame.groupby("method")["setting"].transform("nunique")
    label = frame["method"].where(settings == 1, frame["method"] + "#" + frame["setting"])
    return label.where(frame["budget"] == "", label + " [budget: " + frame["budget"] + "]")


def to_markdown(frame: pd.DataFrame, label_cols: list[str], columns: list[str]) -> str:
    header = ["method", *label_cols, "seeds", *columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    labels = _label(frame)
    for (_, r), label in zip(frame.iterrows(), labels):
        cells = [label, *[str(r[c]) for c in label_cols], str(r["seeds"])]
        cells += [_cell(r[f"{c}_mean"], r[f"{c}_stderr"], r["seeds"], r[f"{c}_n"]) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def mce_section(records: list[dict]) -> str:
    """Mean corruption error per (method, backbone, variant), averaged over seeds; lower is better. For suites
    whose records name an mCE baseline (the released ImageNet-C: Hendrycks & Dietterich 2019)."""
    baseline = next((r.get("suite_notes", {}).get("mce_baseline") for r in records if r.get("suite_notes", {}).get("mce_baseline")), None)
    if baseline is None:
        return ""
    per: dict[tuple, list[float]] = {}
    for r in records:
        by_variant: dict[str, list[dict]] = {}
        for row in r["evals"]:
            by_variant.setdefault(row["variant"], []).append(row)
        for variant, rows in by_variant.items():
            per.setdefault((r["config"]["method"], r["config"]["backbone"], variant), []).append(mce(rows, baseline)["mce"])
    lines = [f"## mCE vs {baseline} (%, lower is better)", "", "| method | backbone | variant | seeds | mCE |", "|---|---|---|---|---|"]
    lines += [f"| {m} | {b} | {v} | {len(x)} | {sum(x) / len(x):.1f} |" for (m, b, v), x in per.items()]
    return "\n".join(lines) + "\n\n"


def sources_section(records: list[dict]) -> str:
    """Where each budget departure comes from (a method's declared source, or the command line); those every
    run shares are listed once, for all."""
    shared = shared_departures(records)
    seen = {}
    for r in records:
        for key, d in sorted(r.get("departures", {}).items()):
            if key not in shared:
                seen.setdefault((r["config"]["method"], key), d["source"])
    if not seen and not shared:
        return ""
    lines = ["## Departures from the suite's training budget", ""]
    lines += [f"- every run: {departure_text(key, d)}, from the {d['source']}" for key, d in shared.items()]
    lines += [f"- {method}, {key}: {source}" for (method, key), source in seen.items()]
    return "\n".join(lines) + "\n\n"


def mixed_section(records: list[dict], label_of, thing: str, kinds: str) -> str:
    """A warning when the table mixes records of several kinds of `thing` (say which, with run counts)."""
    counts: dict[str, int] = {}
    for r in records:
        counts[label_of(r)] = counts.get(label_of(r), 0) + 1
    if len(counts) < 2:
        return ""
    lines = [f"**Mixed {thing}**: these records come from {len(counts)} {kinds}; rerun the older ones "
             "with `benchmark run --rerun` to compare like with like.", ""]
    lines += [f"- {label}: {n} run{'s' if n > 1 else ''}" for label, n in counts.items()]
    return "\n".join(lines) + "\n\n"


def code_section(records: list[dict]) -> str:
    return mixed_section(records, code_label, "code", "versions of the code")


def data_label(record: dict) -> str:
    return f"data {record['data']}" if record.get("data") else "unknown (record predates data fingerprints)"


def left_out_section(rejected) -> str:
    """Records that could not be tabulated, named, so a table never hides what it dropped."""
    if not rejected:
        return ""
    lines = [f"**Left out**: {len(rejected)} record{'s' if len(rejected) > 1 else ''} could not be tabulated.", ""]
    return "\n".join(lines + [f"- {Path(path).name}: {why.rpartition(': ')[2]}" for path, why in rejected]) + "\n\n"


def render(suite: str, records: list[dict], rejected=()) -> tuple[str, pd.DataFrame]:
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
        + mce_section(records)
        + sources_section(records)
        + code_section(records)
        + mixed_section(records, data_label, "data", "copies of the data")
        + left_out_section(rejected)
        + "Generated by `benchmark leaderboard` from results/runs/" + suite + "/; do not edit.\n"
    )
    csv = pd.concat([variants.assign(table="variants"), selection.assign(table="selection")], ignore_index=True)
    return text, csv


def write(results: Path, suite: str) -> tuple[Path, str]:
    records, rejected = scan_records(results, suite)
    text, csv = render(suite, records, rejected)
    md_path = Path(results) / f"{suite}.md"
    atomic_write_bytes(md_path, text.encode())
    atomic_write_bytes(Path(results) / f"{suite}.csv", csv.to_csv(index=False, float_format="%.6g").encode())
    return md_path, text
