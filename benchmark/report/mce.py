"""Mean corruption error (Hendrycks & Dietterich, ICLR 2019) from records, against a named baseline whose
per-corruption errors ship in datasets/imagenet-c/baselines.toml."""
from __future__ import annotations

import functools
import tomllib

import numpy as np

from benchmark.corruption import corruptions
from benchmark.errors import BenchmarkError
from benchmark.resources import shipped


@functools.cache
def baselines() -> dict[str, dict]:
    """Named baselines' top-1 error per corruption (mean over severities 1-5), from datasets/imagenet-c/."""
    path = shipped("datasets", "imagenet-c", "baselines.toml")
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise BenchmarkError(f"cannot read the mCE baselines {path}: {e}") from None


CELLS = len(corruptions.CORRUPTIONS) * len(corruptions.SEVERITIES)  # the grid CE sums over: 15 x 5


def corruption_errors(rows) -> dict[str, dict[int, float]]:
    """Top-1 error per corruption and severity, from eval rows as records hold them
    ({"eval": "fog@3", "metric": "acc", "value": 0.61, ...}); rows that are not ``<corruption>@<severity>``
    accuracies are ignored."""
    errors: dict[str, dict[int, float]] = {}
    for row in rows:
        name, _, severity = str(row.get("eval", "")).partition("@")
        if row.get("metric", "acc") == "acc" and name in corruptions.CORRUPTIONS and severity.isdigit():
            errors.setdefault(name, {})[int(severity)] = 1.0 - float(row["value"])
    return errors


def missing_cells(errors: dict[str, dict[int, float]]) -> list[str]:
    """The ``corruption@severity`` cells of the 15 x 5 grid that `errors` lacks, in grid order."""
    return [f"{c}@{s}" for c in corruptions.CORRUPTIONS for s in corruptions.SEVERITIES if s not in errors.get(c, {})]


def mce(rows, baseline: str = "alexnet") -> dict:
    """Mean corruption error (Hendrycks & Dietterich 2019, eq. in sec. 4), in percent.

    ``rows``: eval rows (see corruption_errors). Every one of the 15 corruptions needs all 5 severities (CE
    sums over them). The baseline's per-corruption error is a mean over severities, so its sum is 5 times it.
    The baseline's errors are 1000-class ImageNet errors: only a run over all 1000 classes compares with them
    (the leaderboard refuses the others). Returns {"mce": float, "ce": {corruption: CE_c}}.
    """
    table = baselines()
    if baseline not in table:
        raise BenchmarkError(f"unknown mCE baseline {baseline!r}; known: {', '.join(table)}")
    errors = corruption_errors(rows)
    missing = missing_cells(errors)
    if missing:
        raise BenchmarkError(f"mCE needs all 15 corruptions x 5 severities; missing {len(missing)}: {', '.join(missing[:5])}")
    base = table[baseline]["error"]
    ce = {c: 100.0 * sum(errors[c].values()) / (len(corruptions.SEVERITIES) * base[c]) for c in corruptions.CORRUPTIONS}
    return {"mce": float(np.mean(list(ce.values()))), "ce": ce}
