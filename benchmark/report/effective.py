"""Effective robustness (Taori et al. 2020): OOD accuracy above the line that standard models follow, the line
being a linear fit of OOD vs ID accuracy in logit space over a baseline family.

Two baseline families: for the ``imagenet`` suite, the standard ImageNet models of Taori et al.'s testbed
(results/reference/testbed_imagenet.csv, read when asked for); for any other suite, this suite's own runs of
declared baseline methods (lp and ft by default). Accuracies are fractions throughout.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmark.errors import BenchmarkError
from benchmark.resources import shipped

# Two points always lie on a line, so a family line needs a third to mean anything.
MIN_POINTS = 3
DEFAULT_FAMILY = ("lp", "ft")
TESTBED_CSV = "testbed_imagenet.csv"
# The testbed's OOD sets, named as our imagenet suite's eval sets (and OOD score columns) are.
TESTBED_SETS = ("imagenet-v2", "imagenet-a", "imagenet-r", "imagenet-sketch", "objectnet")
OOD_MEAN = "ood"


def logit(p):
    p = np.asarray(p, dtype=float)
    return np.log(p) - np.log1p(-p)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


@dataclass(frozen=True)
class Line:
    """OOD accuracy predicted from ID accuracy (fractions): logit(ood) = slope * logit(id) + intercept."""

    slope: float
    intercept: float
    source: str  # where the line comes from: a cited fit, or this suite's baseline family
    points: int  # models (or runs) it was fitted on

    def predict(self, id_acc):
        return sigmoid(self.slope * logit(id_acc) + self.intercept)


def placeable(id_accs, ood_accs) -> np.ndarray:
    """Which points logit axes can hold: both accuracies known and strictly between 0 and 1."""
    x, y = np.asarray(id_accs, dtype=float), np.asarray(ood_accs, dtype=float)
    return (x > 0) & (x < 1) & (y > 0) & (y < 1)


def fit_line(id_accs, ood_accs, source: str) -> Line:
    """Least squares of logit(ood) on logit(id).

    Accuracies of 0 or 1 are refused, not clipped: their logit is infinite, and a clipped one (logit(1e-4) is
    -9.2) would be an outlier that drags the whole fit. Callers leave such points out and say so (`placeable`).
    """
    x, y = np.asarray(id_accs, dtype=float), np.asarray(ood_accs, dtype=float)
    if x.ndim != 1 or x.shape != y.shape:
        raise BenchmarkError(f"{source}: ID and OOD accuracies must be two lists of equal length, got shapes {x.shape} and {y.shape}")
    if not placeable(x, y).all():
        raise BenchmarkError(f"{source}: accuracies must be fractions strictly between 0 and 1 (logit of 0 or 1 is infinite)")
    if len(np.unique(x)) < 2:
        raise BenchmarkError(f"{source}: a line needs at least 2 distinct ID accuracies, got {len(np.unique(x))}")
    slope, intercept = np.polyfit(logit(x), logit(y), 1)
    return Line(float(slope), float(intercept), source, len(x))


def effective_robustness(line: Line, id_acc, ood_acc):
    """OOD accuracy minus what the line predicts from ID accuracy (fractions; scalars or arrays alike); NaN where
    the ID accuracy is 0 or 1, which the logit axes cannot place."""
    ids = np.asarray(id_acc, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        er = np.asarray(ood_acc, dtype=float) - line.predict(ids)
    return np.where((ids > 0) & (ids < 1), er, np.nan)


def _left_out(count: int) -> str:
    return f"; {count} left out: score missing, 0 or 1" if count else ""


def read_testbed() -> pd.DataFrame:
    """Testbed accuracies as fractions: one row per model, one column per set, NaN where not evaluated."""
    lines = shipped("reference", TESTBED_CSV).read_text().splitlines()
    # Line 1 names the source; line 2 is the commented header.
    table = "\n".join([lines[1].lstrip("# "), *lines[2:]])
    return pd.read_csv(io.StringIO(table), index_col="model").astype(float) / 100


def testbed_lines() -> dict[str, Line]:
    """The standard ImageNet models' line for each testbed OOD set and for their mean (key `ood`), all against
    full ImageNet val accuracy, the ID score our imagenet suite reports."""
    acc = read_testbed()
    ood = {name: acc[name] for name in TESTBED_SETS}
    # As WiSE-FT's Figure 1: each model's mean over the five shifts, only for models evaluated on all five.
    ood[OOD_MEAN] = acc[list(TESTBED_SETS)].mean(axis=1, skipna=False)
    return {name: _testbed_line(acc["imagenet"], y) for name, y in ood.items()}


def _testbed_line(id_acc: pd.Series, ood_acc: pd.Series) -> Line:
    usable = placeable(id_acc, ood_acc)
    # A model not evaluated on a set is simply no point of its line; a score the logit axes cannot hold is left
    # out and said (ResNet-50 scores 0 on ImageNet-A, which was collected against it).
    dropped = int((~usable & ood_acc.notna().to_numpy()).sum())
    source = f"Taori et al. 2020 testbed, {int(usable.sum())} standard ImageNet models (results/reference/{TESTBED_CSV}{_left_out(dropped)})"
    return fit_line(id_acc[usable], ood_acc[usable], source)


def family_line(scores: pd.DataFrame, family: tuple[str, ...] = DEFAULT_FAMILY, metric_col_id: str = "id",
                metric_col_ood: str = "ood") -> Line | str:  # fmt: skip
    """The line over this suite's own runs of the baseline `family`, or why there is none.

    `scores` is leaderboard.variant_scores' frame. Each run of a family method is one point: its row whose
    variant is the method itself (lp's `lp`, not a derived variant). `metric_col_ood` may be any OOD group column.
    """
    for column in (metric_col_id, metric_col_ood):
        if column not in scores.columns:
            raise BenchmarkError(f"no score column {column!r}; have: {', '.join(map(str, scores.columns))}")
    runs = scores[scores["method"].isin(family) & (scores["variant"] == scores["method"])]
    usable = placeable(runs[metric_col_id], runs[metric_col_ood])
    points, note = runs[usable], _left_out(int((~usable).sum()))
    distinct = points[metric_col_id].nunique()
    if distinct < MIN_POINTS:
        return _too_few(points, distinct, family) + note
    return fit_line(points[metric_col_id], points[metric_col_ood],
                    f"fit over this suite's {', '.join(family)} runs ({len(points)} points{note})")  # fmt: skip


def _too_few(points: pd.DataFrame, distinct: int, family: tuple[str, ...]) -> str:
    present = [m for m in family if m in set(points["method"])]
    which = ", ".join(present) if present else f"no {', '.join(family)} runs"
    spread = f", only {distinct} distinct in ID accuracy" if distinct < len(points) else ""
    plural = "" if len(points) == 1 else "s"
    return (f"{len(points)} point{plural} ({which}){spread}; a line needs {MIN_POINTS}: "
            f"run a small lr/epochs sweep of {' and '.join(family)}")  # fmt: skip


def line_for(suite: str, scores: pd.DataFrame, column: str = OOD_MEAN) -> Line | str:
    """The baseline line for score `column` (an OOD set or group, or `ood`): the testbed's for the imagenet
    suite, else the line over this suite's lp and ft runs; a string says why there is none."""
    if suite != "imagenet":
        return family_line(scores, metric_col_ood=column)
    lines = testbed_lines()
    if column not in lines:
        raise BenchmarkError(f"no testbed line for {column!r}; valid: {', '.join(lines)}")
    missing = [s for s in TESTBED_SETS if s not in scores.columns]
    if column == OOD_MEAN and missing:
        # Our `ood` is the mean over the sets that were run; the testbed's is over all five.
        return f"the testbed's ood line is the mean over all five shifts; these scores lack {', '.join(missing)}"
    return lines[column]
