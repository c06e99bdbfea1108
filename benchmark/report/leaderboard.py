"""Records -> leaderboard tables. Always regenerated from results/runs/<suite>/*.json, never edited.

Scores per variant: ``selection`` (held-out train slice), ``id`` (mean of ID eval sets), one column per
OOD group (e.g. a corruption family, averaged over its severities; or ImageNet-A; with ``--by severity``, a
severity, averaged over the corruptions), and ``ood`` (mean of the OOD groups, each weighted equally). Two
tables:

- variants: every (method, variant), mean ± stderr over seeds;
- selection: per method, the variant chosen on the selection split (what a user can honestly report)
  beside the oracle variant that maximises mean OOD accuracy (an upper bound no user can pick).

Below them: mCE where the suite names a baseline (ImageNet-C), budget departures, mixed code or data, records
left out. ``board`` gathers all of it; benchmark/report/formats.py renders it as md, csv, tex or html.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from benchmark.errors import BenchmarkError
from benchmark.report import formats, mce
from benchmark.report.effective import OOD_MEAN, Line, effective_robustness, line_for
from benchmark.report.records import code_label, scan_records

KEYS = ["method", "backbone", "setting", "budget"]


def flat_config(config: dict) -> dict[str, str]:
    """A run's configuration but its seed, one level deep (hyper-parameters and sizes by their own names)."""
    flat = {}
    for key, value in config.items():
        if key == "seed":
            continue
        for name, v in (value.items() if isinstance(value, dict) else [(key, value)]):
            flat[name if key == "hparams" else (f"{key}.{name}" if isinstance(value, dict) else key)] = json.dumps(v, default=list)
    return flat


def settings_of(records: list[dict]) -> dict[str, str]:
    """run id -> its setting, named by what tells it apart from the method's other settings in these records
    (e.g. `lr=0.01`); runs that differ only in seed are repeats of one setting. A method with one setting: ''."""
    by_method: dict[str, list[dict]] = {}
    for r in records:
        by_method.setdefault(r["config"]["method"], []).append(r)
    names = {}
    for runs in by_method.values():
        flats = {r["run_id"]: flat_config(r["config"]) for r in runs}
        keys = sorted({k for f in flats.values() for k in f})
        differ = [k for k in keys if len({f.get(k) for f in flats.values()}) > 1]
        for run_id, f in flats.items():
            names[run_id] = ", ".join(f"{k}={json.loads(f[k]) if k in f else '(none)'}" for k in differ)
    return names


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
    shared, settings = shared_departures(records), settings_of(records)
    rows = []
    for r in sorted(records, key=lambda r: (order.index(r["config"]["method"]), r["run_id"])):
        cfg = r["config"]
        base = {"run_id": r["run_id"], "method": cfg["method"], "backbone": cfg["backbone"],
                "setting": settings[r["run_id"]], "budget": budget_label(r.get("departures", {}), shared), "seed": cfg["seed"]}  # fmt: skip
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


def by_severity(long: pd.DataFrame) -> pd.DataFrame:
    """OOD rows regrouped by severity, ``sevN`` = the corruptions at severity N, in increasing severity."""
    ood = long["role"] == "ood"
    parts = long.loc[ood, "eval"].astype(str).str.extract(r"^(.+)@(\d+)$")
    plain = long.loc[ood, "eval"][parts[1].isna()]
    if not ood.any() or len(plain):
        found = f"OOD eval {plain.iloc[0]!r}" if len(plain) else "no OOD evals"
        raise BenchmarkError(f"--by severity needs OOD evals named <corruption>@<severity> (e.g. fog@3); "
                             f"these records have {found}")
    severity = parts[1].astype(int)
    regrouped = long[ood].assign(group="sev" + severity.astype(str)).iloc[severity.argsort(kind="stable")]
    return pd.concat([long[~ood], regrouped], ignore_index=True)


def primary_scores(records: list[dict], by: str = "corruption") -> tuple[pd.DataFrame, list[str], str, Line | str]:
    """Per (run, variant) scores in the records' primary metric (with `er`), the OOD groups, that metric, and the
    effective-robustness line `er` is measured from (or why there is none). OOD groups `by` "corruption": the
    records' groups (a corruption family averaged over its severities, or a whole eval set such as
    ImageNet-A); by "severity": one per severity (corruption suites only)."""
    long = long_frame(records)
    if long.empty:
        raise BenchmarkError("no finished records to tabulate; run `benchmark run` first")
    metric = primary_metric(long)
    long = long[long["metric"] == metric]
    scores, groups = variant_scores(by_severity(long) if by == "severity" else long)
    line = baseline(records, scores)
    scores["er"] = effective_robustness(line, scores["id"], scores["ood"]) if isinstance(line, Line) else math.nan
    return scores, groups, metric, line


def baseline(records: list[dict], scores: pd.DataFrame) -> Line | str:
    """The effective-robustness line of the records' suite for the `ood` score, or why there is none."""
    return line_for(records[0]["config"]["suite"], scores, OOD_MEAN)


def effective_note(line: Line | str) -> formats.Note:
    """Which line `er` is measured from (or why the column is empty)."""
    if not isinstance(line, Line):
        return formats.Note("Effective robustness", f"`er` is not computed: {line}.", ())
    return formats.Note("Effective robustness", (
        f"`er` = `ood` minus the `ood` that the baseline line predicts from `id` (logit(ood) = {line.slope:.3f} · "
        f"logit(id) {line.intercept:+.3f}); the line: {line.source}."), ())  # fmt: skip


def tables(records: list[dict], by: str = "corruption") -> tuple[pd.DataFrame, pd.DataFrame, list[str], str]:
    """(every variant, selected vs oracle picks, OOD groups, metric), each score mean ± stderr over seeds."""
    scores, groups, metric, _ = primary_scores(records, by)
    return summarise(scores, groups, metric)


def summarise(scores: pd.DataFrame, groups: list[str], metric: str) -> tuple[pd.DataFrame, pd.DataFrame, list[str], str]:
    """tables() from primary_scores' frame."""
    columns = ["selection", "id", "ood", "er", *groups]
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


def class_subset(record: dict) -> str:
    """'' for a run over all 1000 ImageNet classes; else its restricted label space, e.g. 'a 10-class subset'
    (``--size wnids=...``: the record's sizes name the classes, its suite notes list them)."""
    chosen = record["config"].get("sizes", {}).get("wnids")
    if not chosen:
        return ""
    listed = record.get("suite_notes", {}).get("wnids")
    n = len(listed) if isinstance(listed, list) else len(chosen) if isinstance(chosen, list) else 0
    return f"a {n}-class subset" if n else "a class subset"


def mce_text(runs: list[tuple[dict, list[dict]]], baseline: str) -> str:
    """One row's mCE: the mean over its runs (seeds), or why there is none. A run over a class subset shows
    none: the baseline's errors are 1000-class errors, so normalising a k-class run by them gives a number
    that looks like an mCE and is not one. A run missing grid cells shows how many it has."""
    subset = next((s for s in (class_subset(r) for r, _ in runs) if s), "")
    if subset:
        return f"not shown: {subset}; the {baseline} errors are over all 1000 classes"
    gaps = [set(mce.missing_cells(mce.corruption_errors(rows))) for _, rows in runs]
    missing = [c for c in mce.missing_cells({}) if any(c in g for g in gaps)]  # missing_cells({}): the whole grid
    if missing:
        more = ", ..." if len(missing) > 3 else ""
        return f"incomplete: {mce.CELLS - len(missing)} of {mce.CELLS} cells (missing {', '.join(missing[:3])}{more})"
    return f"{sum(mce.mce(rows, baseline)['mce'] for _, rows in runs) / len(runs):.1f}"


def mce_grid(records: list[dict]) -> formats.Grid | None:
    """Mean corruption error per (method, backbone, variant), averaged over seeds; lower is better. For suites
    whose records name an mCE baseline (the released ImageNet-C: Hendrycks & Dietterich 2019)."""
    baseline = next((r.get("suite_notes", {}).get("mce_baseline") for r in records if r.get("suite_notes", {}).get("mce_baseline")), None)
    if baseline is None:
        return None
    runs: dict[tuple, list[tuple[dict, list[dict]]]] = {}
    for r in records:
        by_variant: dict[str, list[dict]] = {}
        for row in r["evals"]:
            by_variant.setdefault(row["variant"], []).append(row)
        for variant, rows in by_variant.items():
            runs.setdefault((r["config"]["method"], r["config"]["backbone"], variant), []).append((r, rows))
    rows = tuple((m, b, v, str(len(x)), mce_text(x, baseline)) for (m, b, v), x in runs.items())
    return formats.Grid(f"mCE vs {baseline} (%, lower is better)", ("method", "backbone", "variant", "seeds", "mCE"), rows)


def departures_note(records: list[dict]) -> formats.Note | None:
    """Where each budget departure comes from (a method's declared source, or the command line); those every
    run shares are listed once, for all."""
    shared = shared_departures(records)
    seen = {}
    for r in records:
        for key, d in sorted(r.get("departures", {}).items()):
            if key not in shared:
                seen.setdefault((r["config"]["method"], key), d["source"])
    if not seen and not shared:
        return None
    items = [f"every run: {departure_text(key, d)}, from the {d['source']}" for key, d in shared.items()]
    items += [f"{method}, {key}: {source}" for (method, key), source in seen.items()]
    return formats.Note("Departures from the suite's training budget", "", tuple(items))


def mixed_note(records: list[dict], label_of, thing: str, kinds: str) -> formats.Note | None:
    """A warning when the table mixes records of several kinds of `thing` (say which, with run counts)."""
    counts: dict[str, int] = {}
    for r in records:
        counts[label_of(r)] = counts.get(label_of(r), 0) + 1
    if len(counts) < 2:
        return None
    text = (f"these records come from {len(counts)} {kinds}; rerun the older ones with `benchmark run --rerun` "
            "to compare like with like.")  # fmt: skip
    items = tuple(f"{label}: {n} run{'s' if n > 1 else ''}" for label, n in counts.items())
    return formats.Note(f"Mixed {thing}", text, items)


def md_note(note: formats.Note | None) -> str:
    """A note in markdown, '' for none (for reproduce's tables, which are markdown only)."""
    return formats.md_extra(note) if note else ""


def mixed_section(records: list[dict], label_of, thing: str, kinds: str) -> str:
    return md_note(mixed_note(records, label_of, thing, kinds))


def code_note(records: list[dict]) -> formats.Note | None:
    return mixed_note(records, code_label, "code", "versions of the code")


def code_section(records: list[dict]) -> str:
    return md_note(code_note(records))


def data_label(record: dict) -> str:
    return f"data {record['data']}" if record.get("data") else "unknown (record predates data fingerprints)"


def data_note(records: list[dict]) -> formats.Note | None:
    return mixed_note(records, data_label, "data", "copies of the data")


def left_out_note(rejected) -> formats.Note | None:
    """Records that could not be tabulated, named, so a table never hides what it dropped."""
    if not rejected:
        return None
    text = f"{len(rejected)} record{'s' if len(rejected) > 1 else ''} could not be tabulated."
    items = tuple(f"{Path(path).name}: {why.rpartition(': ')[2]}" for path, why in rejected)
    return formats.Note("Left out", text, items)


def intro(metric: str, by: str) -> str:
    text = (f"{METRIC_TITLES[metric]} (%), mean ± standard error over seeds. `selection` is the held-out train slice "
            "used only to choose variants; `ood` is the mean over the OOD groups.")  # fmt: skip
    if by == "severity":
        text += " The OOD groups are severities: `sevN` is the mean over the corruptions at severity N."
    return text


def board(suite: str, records: list[dict], rejected=(), by: str = "corruption", results: Path = Path("results"),
          scored: tuple | None = None) -> formats.Board:
    """What the leaderboard says, for every format. The selection table shows every score but the selection
    split's and the single OOD groups'; the variants table shows every score. `scored`: primary_scores(records,
    by), where the caller has it already."""
    scores, groups, metric, line = scored or primary_scores(records, by)
    variants, selection, groups, metric = summarise(scores, groups, metric)
    picked = [c for c in formats.score_columns(selection) if c != "selection" and c not in groups]
    shown = (
        formats.Table("selection", "Model selection: chosen on the selection split vs oracle (best mean OOD)", selection,
                      ("backbone", "pick", "variant"), tuple(picked)),
        formats.Table("variants", "Every variant", variants, ("backbone", "variant"), tuple(formats.score_columns(variants))),
    )  # fmt: skip
    extras = (effective_note(line), mce_grid(records), departures_note(records), code_note(records), data_note(records),
              left_out_note(rejected))  # fmt: skip
    source = f"{Path(results) / 'runs' / suite}/"  # as given (--results), so the footer names the real folder
    return formats.Board(suite, intro(metric, by), shown, tuple(x for x in extras if x), source)


def render(suite: str, records: list[dict], rejected=(), by: str = "corruption",
           results: Path = Path("results")) -> tuple[str, pd.DataFrame]:
    """(markdown text, the CSV's frame)."""
    b = board(suite, records, rejected, by, results)
    return formats.markdown(b), formats.csv_frame(b)
