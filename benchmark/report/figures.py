"""Figures regenerated from records, like the tables: written next to them as results/<suite>.<kind>.png/.svg.

- scatter: ID vs OOD score on logit axes, each method's selected variant (mean ± stderr over seeds), the
  effective-robustness baseline line when one is given, WiSE-FT-style α paths, a soup's ingredients and
  soups, and the zero-shot / pretrained point;
- heatmap (corruption suites, OOD evals named corruption@severity): corruption × severity per method;
- domains (OOD groups that are not corruptions, e.g. DomainNet's sketch/painting): grouped bars per method.

Every figure is drawn from a plain data dict (``figure_data``) that ``write`` also returns, so a drift test
compares numbers, never pixels. Values in the dict are fractions, rounded to 6 decimals; a missing value is None.
"""
from __future__ import annotations

import io
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np
import pandas as pd

from benchmark.files import atomic_write_bytes
from benchmark.report.leaderboard import KEYS, METRIC_TITLES, long_frame, primary_metric, tables, variant_scores

if TYPE_CHECKING:
    from benchmark.report.effective import Line

# A baseline line: fitted (Line), absent (None), or a sentence saying why none could be fitted.
Baseline = Union["Line", str, None]

CORRUPTION = re.compile(r"^(?P<corruption>.+)@(?P<severity>\d+)$")
INGREDIENT = re.compile(r"-ingredient-(?P<index>\d+)$")
TITLES = {"scatter": "ID vs OOD", "heatmap": "Corruption heatmap", "domains": "Per-domain scores"}
# Fixed so the SVG's element ids, and hence its bytes, do not change from one regeneration to the next.
RC = {"svg.hashsalt": "oodbench-figures", "svg.fonttype": "path"}
LINE_POINTS = 41
# Percent ticks tried first on a logit axis; a narrow range falls back to evenly stepped ones.
NICE_PERCENTS = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98, 99, 99.5, 99.8, 99.9]
# Logit axes cannot show 0 or 1; limits are computed on values clipped this far inside.
EDGE = 1e-3


def _num(x) -> float | None:
    """A JSON-able number: None for NaN/missing, rounded so the drift test is blind to float noise."""
    return None if x is None or pd.isna(x) else round(float(x), 6)


def _logit(p):
    p = np.clip(np.asarray(p, dtype=float), EDGE, 1 - EDGE)
    return np.log(p) - np.log1p(-p)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


# ---------------------------------------------------------------------------------------------- data


def series_labels(frame: pd.DataFrame) -> list[str]:
    """Legend name of each (method, backbone, setting, budget) row: the method, with the backbone where the
    suite has several, its setting where the method ran several ways (e.g. `lr=0.01`), and its budget."""
    several_backbones = frame["backbone"].nunique() > 1
    labels = []
    for _, r in frame.iterrows():
        label = r["method"] + (f" ({r['backbone']})" if several_backbones else "")
        label += f" ({r['setting']})" if r["setting"] else ""
        labels.append(label + (f" [budget: {r['budget']}]" if r["budget"] else ""))
    return labels


def _series(key: tuple, labels: dict) -> dict:
    """Which method (and backbone, setting, budget) a plotted thing belongs to, with its legend label."""
    return {"label": labels[key], **dict(zip(KEYS, key))}


def _point(row) -> dict:
    """One plotted point from a mean ± stderr table row."""
    return {"variant": row["variant"], "seeds": int(row["seeds"]),
            "id": _num(row["id_mean"]), "id_stderr": _num(row["id_stderr"]),
            "ood": _num(row["ood_mean"]), "ood_stderr": _num(row["ood_stderr"])}  # fmt: skip


def _alpha(method: str, variant: str) -> float | None:
    """α of an interpolation variant named <method>@<α> (WiSE-FT's wise-ft@0.5), else None."""
    prefix = f"{method}@"
    if not variant.startswith(prefix):
        return None
    try:
        return float(variant[len(prefix) :])
    except ValueError:
        return None


def alpha_paths(variants: pd.DataFrame, labels: dict) -> list[dict]:
    """Per series with two or more <method>@<α> variants: those points sorted by α (0 = pretrained end)."""
    paths = []
    for key, rows in variants.groupby(KEYS, sort=False):
        points = [{**_point(r), "alpha": a} for _, r in rows.iterrows() if (a := _alpha(r["method"], r["variant"])) is not None]
        if len(points) >= 2:
            paths.append({**_series(key, labels), "points": sorted(points, key=lambda p: p["alpha"])})
    return paths


def soups(variants: pd.DataFrame, labels: dict) -> list[dict]:
    """Per series with <name>-ingredient-<i> variants: the ingredients (by index) and its soups (the rest)."""
    found = []
    for key, rows in variants.groupby(KEYS, sort=False):
        index = rows["variant"].str.extract(INGREDIENT, expand=False).astype(float)
        if index.notna().any():
            ingredients = [_point(r) for _, r in rows.assign(i=index).dropna(subset=["i"]).sort_values("i").iterrows()]
            mixed = [_point(r) for _, r in rows[index.isna()].iterrows()]
            found.append({**_series(key, labels), "ingredients": ingredients, "soups": mixed})
    return found


def pretrained_points(points: list[dict], paths: list[dict]) -> list[dict]:
    """The zero-shot / pretrained points: the zeroshot method's, and the α = 0 end of each α path."""
    marked = [{**p, "kind": "zero-shot"} for p in points if p["method"] == "zeroshot"]
    for path in paths:
        series = {k: v for k, v in path.items() if k != "points"}
        marked += [{**series, **p, "kind": "pretrained (α=0)"} for p in path["points"] if p["alpha"] == 0]
    return marked


def _span(values: list[float]) -> list[float]:
    """Axis limits around values (fractions), padded in logit space."""
    lo, hi = _logit(min(values)), _logit(max(values))
    pad = 0.08 * (hi - lo) if hi > lo else 0.2
    return [_num(_sigmoid(lo - pad)), _num(_sigmoid(hi + pad))]


def _extent(entries: list[dict], axis: str) -> list[float]:
    """Every value an axis must show: each point with its error bar."""
    out = []
    for e in entries:
        if e[axis] is not None:
            err = e[f"{axis}_stderr"] or 0.0
            out += [e[axis] - err, e[axis] + err]
    return out


def line_data(line: Baseline, xlim: list[float]) -> dict | None:
    """The baseline line sampled across the plotted ID range (evenly in logit space), or why there is none."""
    if line is None:
        return None
    if isinstance(line, str):
        return {"absent": line}
    x = _sigmoid(np.linspace(_logit(xlim[0]), _logit(xlim[1]), LINE_POINTS))
    x[0], x[-1] = xlim  # exactly the axis ends, not their logit round trip
    y = np.asarray(line.predict(x), dtype=float)
    return {"source": line.source, "points": int(line.points), "x": [_num(v) for v in x], "y": [_num(v) for v in y]}


def scatter_data(variants: pd.DataFrame, selected: pd.DataFrame, labels: dict, line: Baseline) -> dict | None:
    """Selected points, α paths, soups, pretrained marks, the baseline line and the axis limits; None when no
    method has both an ID and an OOD score (nothing to plot)."""
    points = [{**_series(tuple(r[KEYS]), labels), **_point(r)} for _, r in selected.iterrows()]
    paths, found = alpha_paths(variants, labels), soups(variants, labels)
    everything = points + [p for path in paths for p in path["points"]]
    everything += [p for soup in found for p in soup["ingredients"] + soup["soups"]]
    plotted = [p for p in everything if p["id"] is not None and p["ood"] is not None]
    if not plotted:
        return None
    xlim = _span(_extent(plotted, "id"))
    baseline = line_data(line, xlim)
    ys = _extent(plotted, "ood") + (baseline.get("y", []) if baseline else [])
    return {"xlim": xlim, "ylim": _span([y for y in ys if y is not None]), "points": points, "paths": paths,
            "soups": found, "pretrained": pretrained_points(points, paths), "line": baseline}  # fmt: skip


def selected_runs(scores: pd.DataFrame) -> pd.DataFrame:
    """Per run, the variant with the best selection score: the same rule as leaderboard.tables' `selected`."""
    run_keys = KEYS + ["seed", "run_id"]
    best = scores["selection"].fillna(-math.inf).groupby([scores[k] for k in run_keys], sort=False).idxmax()
    return scores.loc[best, run_keys + ["variant"]]


def corruption_groups(ood: pd.DataFrame) -> list[str]:
    """OOD groups whose every eval is named corruption@severity, in suite order."""
    named = ood.assign(is_c=ood["eval"].str.fullmatch(CORRUPTION.pattern))
    return [g for g, rows in named.groupby("group", sort=False) if rows["is_c"].all()]


def heatmap_data(ood: pd.DataFrame, picks: pd.DataFrame, selected: pd.DataFrame, labels: dict) -> dict | None:
    """Per series: corruption × severity grid of its selected variant's score, mean over seeds."""
    groups = corruption_groups(ood)
    if not groups:
        return None
    rows = ood[ood["group"].isin(groups)].merge(picks[["run_id", "variant"]], on=["run_id", "variant"])
    parts = rows["eval"].str.extract(CORRUPTION)
    rows = rows.assign(corruption=parts["corruption"], severity=parts["severity"].astype(int))
    corruptions = list(dict.fromkeys(rows["corruption"]))
    severities = sorted(int(s) for s in set(rows["severity"]))
    means = rows.groupby(KEYS + ["corruption", "severity"])["value"].mean()
    panels = []
    for _, r in selected.iterrows():
        key = tuple(r[KEYS])
        cells = [[_num(means.get(key + (c, s))) for s in severities] for c in corruptions]
        panels.append({**_series(key, labels), "variant": r["variant"], "seeds": int(r["seeds"]), "cells": cells})
    return {"corruptions": corruptions, "severities": severities, "panels": panels}


def domains_data(groups: list[str], selected: pd.DataFrame, labels: dict) -> dict | None:
    """Per series: its selected variant's ID score and each non-corruption OOD group, mean ± stderr."""
    if not groups:
        return None
    columns = ["id", *groups]
    bars = []
    for _, r in selected.iterrows():
        key = tuple(r[KEYS])
        bars.append({**_series(key, labels), "variant": r["variant"], "seeds": int(r["seeds"]),
                     "values": {c: _num(r[f"{c}_mean"]) for c in columns},
                     "stderr": {c: _num(r[f"{c}_stderr"]) for c in columns}})  # fmt: skip
    return {"groups": columns, "bars": bars}


def figure_data(suite: str, records: list[dict], line: Baseline = None) -> dict:
    """Everything the figures plot, as a plain JSON-able dict: suite, metric, scatter, heatmap, domains (the
    last three None where they do not apply)."""
    variants, selection, groups, metric = tables(records)
    selected = selection[selection["pick"] == "selected"].reset_index(drop=True)
    labels = dict(zip(map(tuple, selected[KEYS].values), series_labels(selected)))
    long = long_frame(records)
    long = long[long["metric"] == primary_metric(long)]
    scores, _ = variant_scores(long)
    ood = long[long["role"] == "ood"]
    domains = [g for g in groups if g not in corruption_groups(ood)]
    return {"suite": suite, "metric": metric,
            "scatter": scatter_data(variants, selected, labels, line),
            "heatmap": heatmap_data(ood, selected_runs(scores), selected, labels),
            "domains": domains_data(domains, selected, labels)}  # fmt: skip


# ---------------------------------------------------------------------------------------------- drawing


def _percent(p: float) -> str:
    return f"{100 * p:.4g}%"


def percent_ticks(lim: list[float]) -> list[float]:
    """Readable percent ticks inside lim: the nice logit-axis ones, or even steps where the range is narrow."""
    lo, hi = 100 * lim[0], 100 * lim[1]
    ticks = [p for p in NICE_PERCENTS if lo <= p <= hi]
    for step in (10, 5, 2, 1, 0.5, 0.2, 0.1):
        if len(ticks) >= 3:
            break
        ticks = [round(k * step, 1) for k in range(math.ceil(lo / step), math.floor(hi / step) + 1)]
    return [p / 100 for p in ticks]


def _logit_axis(axis, lim: list[float]) -> None:
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    axis.set_major_locator(FixedLocator(percent_ticks(lim)))
    axis.set_major_formatter(FuncFormatter(lambda p, _: _percent(p)))
    axis.set_minor_locator(NullLocator())  # the logit scale's minor labels would crowd the percent ones


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)  # Agg for this figure only: no pyplot, no global backend switch
    return fig


def _draw_points(ax, scatter: dict, color: dict) -> None:
    for p in scatter["points"]:
        if p["id"] is None or p["ood"] is None:
            continue
        marker = "*" if p["method"] == "zeroshot" else "o"
        ax.errorbar(p["id"], p["ood"], xerr=p["id_stderr"], yerr=p["ood_stderr"], fmt=marker, ms=11 if marker == "*" else 7,
                    color=color[p["label"]], capsize=2, label=p["label"], zorder=3)  # fmt: skip


def _draw_paths(ax, scatter: dict, color: dict) -> None:
    for path in scatter["paths"]:
        pts = path["points"]
        ax.plot([p["id"] for p in pts], [p["ood"] for p in pts], "-o", ms=3, lw=1, color=color[path["label"]],
                label=f"{path['label']} α path", zorder=2)  # fmt: skip
        for p in pts:
            ax.annotate(f"α={p['alpha']:g}", (p["id"], p["ood"]), xytext=(4, -9), textcoords="offset points", fontsize=7)


def _draw_soups(ax, scatter: dict, color: dict) -> None:
    for soup in scatter["soups"]:
        c = color[soup["label"]]
        ing = soup["ingredients"]
        ax.scatter([p["id"] for p in ing], [p["ood"] for p in ing], s=14, marker="x", color=c, label=f"{soup['label']} ingredients", zorder=2)
        for p in soup["soups"]:
            ax.scatter([p["id"]], [p["ood"]], s=36, marker="D", facecolors="none", edgecolors=c, zorder=2)
            ax.annotate(p["variant"], (p["id"], p["ood"]), xytext=(4, 4), textcoords="offset points", fontsize=7)


def _draw_pretrained(ax, scatter: dict) -> None:
    marks = [p for p in scatter["pretrained"] if p["kind"] != "zero-shot"]  # the zeroshot method's own point is a star already
    if marks:
        ax.plot([p["id"] for p in marks], [p["ood"] for p in marks], ls="none", marker="*", ms=14, mfc="none", mec="black",
                label="pretrained (α=0)", zorder=4)  # fmt: skip


def _draw_line(ax, line: dict | None) -> None:
    if line is None:
        return
    if "absent" in line:
        ax.text(0.01, 0.01, f"no baseline line: {line['absent']}", transform=ax.transAxes, fontsize=7, color="gray")
        return
    ax.plot(line["x"], line["y"], "--", color="gray", lw=1.2, label=f"baseline fit: {line['source']}", zorder=1)


def draw_scatter(data: dict):
    """ID vs OOD on logit axes with percent ticks; legend in method order, then paths, soups and the line."""
    scatter, title = data["scatter"], METRIC_TITLES[data["metric"]]
    fig = _new_figure(9, 6)
    ax = fig.add_subplot()
    for set_scale in (ax.set_xscale, ax.set_yscale):
        set_scale("logit", nonpositive="clip")
    color = dict(zip((p["label"] for p in scatter["points"]), _colors(len(scatter["points"]))))
    _draw_points(ax, scatter, color)
    _draw_paths(ax, scatter, color)
    _draw_soups(ax, scatter, color)
    _draw_pretrained(ax, scatter)
    _draw_line(ax, scatter["line"])
    ax.set_xlim(scatter["xlim"])
    ax.set_ylim(scatter["ylim"])
    _logit_axis(ax.xaxis, scatter["xlim"])
    _logit_axis(ax.yaxis, scatter["ylim"])
    ax.grid(True, lw=0.4, alpha=0.5)
    ax.set_xlabel(f"ID {title} (%, logit scale)")
    ax.set_ylabel(f"OOD {title} (%, logit scale)")
    ax.set_title(f"{data['suite']}: ID vs OOD, selected variant per method (mean ± stderr over seeds)", fontsize=10)
    _legend_in_method_order(ax, [p["label"] for p in scatter["points"]])
    return fig


def _legend_in_method_order(ax, methods: list[str]) -> None:
    """Methods first in their declared order, then the paths, soups and line (matplotlib would group by artist type)."""
    handles, names = ax.get_legend_handles_labels()
    by_name = dict(zip(names, handles))
    order = [m for m in methods if m in by_name] + [k for k in by_name if k not in methods]
    ax.legend([by_name[k] for k in order], order, loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8, frameon=False)


def _annotate_cells(ax, cells: list[list]) -> None:
    for i, row in enumerate(cells):
        for j, v in enumerate(row):
            if v is not None:
                ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", fontsize=7, color="white" if v < 0.5 else "black")


def draw_heatmap(data: dict):
    """One panel per method: corruption rows × severity columns, values in %, one shared colour scale."""
    from matplotlib.ticker import FuncFormatter

    heat = data["heatmap"]
    panels, rows = heat["panels"], len(heat["corruptions"])
    ncols = min(len(panels), 4)
    nrows = math.ceil(len(panels) / ncols)
    fig = _new_figure(2.0 + 1.9 * ncols, 1.0 + nrows * (0.8 + 0.24 * rows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    image = None
    for i, (ax, panel) in enumerate(zip(axes.flat, panels)):
        grid = np.array([[np.nan if v is None else v for v in row] for row in panel["cells"]], dtype=float)
        image = ax.imshow(np.ma.masked_invalid(grid), vmin=0, vmax=1, cmap="viridis", aspect="auto")
        _annotate_cells(ax, panel["cells"])
        # The variant is named only where it says more than the method's name (wise-ft@0.5, soup-greedy).
        ax.set_title(panel["label"] if panel["variant"] == panel["method"] else f"{panel['label']}: {panel['variant']}", fontsize=8)
        ax.set_xticks(range(len(heat["severities"])), [str(s) for s in heat["severities"]], fontsize=7)
        ax.set_yticks(range(rows), heat["corruptions"] if i % ncols == 0 else [], fontsize=7)
        ax.set_xlabel("severity", fontsize=7)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    fig.colorbar(image, ax=axes.ravel().tolist(), format=FuncFormatter(lambda p, _: _percent(p)), shrink=0.8).ax.tick_params(labelsize=7)
    fig.suptitle(f"{data['suite']}: OOD {METRIC_TITLES[data['metric']]} (%) by corruption and severity, selected variant", fontsize=10)
    return fig


def draw_domains(data: dict):
    """Grouped bars: per method (x), its ID score and each OOD domain, with stderr bars."""
    dom = data["domains"]
    bars, groups = dom["bars"], dom["groups"]
    fig = _new_figure(max(6.0, 1.0 + 0.25 * len(bars) * (len(groups) + 1)), 4.5)
    ax = fig.add_subplot()
    width = 0.8 / len(groups)
    for k, (group, c) in enumerate(zip(groups, _colors(len(groups)))):
        xs = [i + (k - (len(groups) - 1) / 2) * width for i in range(len(bars))]
        values = [np.nan if b["values"][group] is None else b["values"][group] for b in bars]
        errs = [0.0 if b["stderr"][group] is None else b["stderr"][group] for b in bars]
        ax.bar(xs, values, width, yerr=errs, capsize=2, color=c, label="ID" if group == "id" else group)
    ax.set_xticks(range(len(bars)), [b["label"] for b in bars], rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.yaxis.set_major_formatter(lambda p, _: _percent(p))
    ax.set_ylabel(f"{METRIC_TITLES[data['metric']]} (%)")
    ax.set_title(f"{data['suite']}: ID and each OOD domain, selected variant per method (mean ± stderr)", fontsize=10)
    ax.grid(True, axis="y", lw=0.4, alpha=0.5)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8, frameon=False)
    return fig


DRAW = {"scatter": draw_scatter, "heatmap": draw_heatmap, "domains": draw_domains}


def render(fig, fmt: str) -> bytes:
    """The figure's bytes, with no date or software version in them, so equal data gives equal files."""
    buf = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else {"Software": None}
    fig.savefig(buf, format=fmt, metadata=metadata, dpi=120)
    return buf.getvalue()


def write(results_dir: Path, suite: str, records: list[dict], line: Baseline = None) -> tuple[list[Path], str, dict]:
    """Write results/<suite>.<kind>.png and .svg for each figure that applies; return the paths, a markdown
    snippet embedding the PNGs (links relative to results/), and the plotted data."""
    import matplotlib

    data = figure_data(suite, records, line)
    paths, images = [], []
    for kind, draw in DRAW.items():
        if data[kind] is None:
            continue
        with matplotlib.rc_context(RC):
            fig = draw(data)
            for fmt in ("png", "svg"):
                path = Path(results_dir) / f"{suite}.{kind}.{fmt}"
                atomic_write_bytes(path, render(fig, fmt))
                paths.append(path)
        images.append(f"![{TITLES[kind]}]({suite}.{kind}.png)")
    markdown = "## Figures\n\n" + "\n\n".join(images) + "\n" if images else ""
    return paths, markdown, data
