"""`benchmark reproduce proxy`: do the robust fine-tuning papers' qualitative claims hold on the proxy suite?

Every method runs at its defaults on the proxy (suite `digits`, backbone `digitnet`, seeds 0, 1, 2). Each
claim's effect is computed per seed, against ft's run of the same seed, from each run's *selected* variant (the
one its selection split picks: leaderboard.summarise's rule, never the best on OOD test), then summarised as
mean ± standard error over seeds and judged by one rule (RULE). Claims that do not hold are reported as such.

The runs are planned by benchmark/harness/fill.py (this package may not plan): `render` is handed their configs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchmark.report import formats, leaderboard, records
from benchmark.report.effective import Line

# The claim kinds: where the WiSE-FT path lies against its ends' line; more OOD than ft; more OOD or effective
# robustness than ft at ID within ID_TOLERANCE.
PATH, OOD, OOD_OR_ER = "path", "ood", "ood-or-er"
ID_TOLERANCE = 1.0  # points of ID accuracy a method may lose to ft and still be "at the same ID"
HOLDS, FAILS, NOISE = "holds", "does not hold", "within noise"
NO_STDERR = "no verdict (1 seed: no stderr)"
NO_SEEDS = "no verdict (no seed has both runs)"
RULE = (f"Verdict rule: *{HOLDS}* when effect − 2·stderr > 0; *{FAILS}* when effect + 2·stderr < 0, or when the "
        f"mean ΔID is below −{ID_TOLERANCE:g} point (the ID precondition of the claims \"at ID within "
        f"{ID_TOLERANCE:g} point\"); otherwise *{NOISE}*. stderr = sample standard deviation over seeds / √n, so "
        f"n ≥ 2 seeds are needed. A claim of \"more OOD or effective robustness\" holds when the ID precondition "
        f"holds and ΔOOD or ΔER holds, and does not hold when each of them does not.")  # fmt: skip


@dataclass(frozen=True)
class Claim:
    method: str
    paper: str
    statement: str
    kind: str  # PATH, OOD or OOD_OR_ER


@dataclass(frozen=True)
class ClaimsSpec:
    title: str
    suite: str
    backbone: str
    methods: tuple[str, ...]
    claims: tuple[Claim, ...]
    seeds: tuple[int, ...] = (0, 1, 2)  # `--seed` default

    def runs(self) -> list[tuple[str, tuple, str]]:
        """(backbone, overrides, method) of every run the claims read (fill.py plans them): each at its defaults."""
        return [(self.backbone, (), method) for method in self.methods]


AT_ID = f"more OOD accuracy or effective robustness than FT, at ID accuracy within {ID_TOLERANCE:g} point"
PROXY = ClaimsSpec(
    "Proxy: the robust fine-tuning papers' claims on suite `digits`", "digits", "digitnet",
    ("zeroshot", "ft", "lp", "lp-ft", "wise-ft", "l2-sp", "tpgm", "ftp", "fsr"),
    (Claim("wise-ft", "Wortsman et al., CVPR 2022", "the interpolation path rises above the zero-shot–FT line", PATH),
     Claim("lp-ft", "Kumar et al., ICLR 2022", "more OOD accuracy than FT", OOD),
     Claim("l2-sp", "Li, Grandvalet & Davoine, ICML 2018", AT_ID, OOD_OR_ER),
     Claim("tpgm", "Tian et al., CVPR 2023", AT_ID, OOD_OR_ER),
     Claim("ftp", "Tian et al., NeurIPS 2023", AT_ID, OOD_OR_ER),
     Claim("fsr", "Yuan et al. 2025 (arXiv 2509.05328; our reading of its abstract)", AT_ID, OOD_OR_ER)),
)  # fmt: skip
CLAIMS = {"proxy": PROXY}


@dataclass(frozen=True)
class Effect:
    """An effect in points: mean and standard error over seeds (NaN under 2 seeds), and the seed count."""

    mean: float
    stderr: float
    n: int

    @classmethod
    def of(cls, per_seed: pd.Series) -> Effect:
        points = 100 * per_seed.dropna()
        return cls(points.mean(), points.sem() if len(points) > 1 else math.nan, len(points))

    def text(self) -> str:
        if not self.n:
            return "–"
        if self.n < 2:
            return f"{self.mean:+.2f} (1 seed: no stderr)"
        return f"{self.mean:+.2f} ± {self.stderr:.2f}"

    def verdict(self) -> str:
        if self.n < 2:
            return NO_STDERR if self.n else NO_SEEDS
        if self.mean - 2 * self.stderr > 0:
            return HOLDS
        return FAILS if self.mean + 2 * self.stderr < 0 else NOISE


def alpha_of(variant: str) -> float:
    """WiSE-FT's mixing weight from its variant name (methods/wise_ft.py: `wise-ft@0.5`)."""
    return float(variant.rpartition("@")[2])


def above_line(path: pd.DataFrame, alpha: float) -> float:
    """OOD at `alpha` minus the straight line through the path's ends (alpha 0, alpha 1) at alpha's ID accuracy:
    0 at either end; NaN where the ends have one ID accuracy (no line through them)."""
    start, end, point = path.loc[0.0], path.loc[1.0], path.loc[alpha]
    if end["id"] == start["id"]:
        return math.nan
    slope = (end["ood"] - start["ood"]) / (end["id"] - start["id"])
    return point["ood"] - (start["ood"] + (point["id"] - start["id"]) * slope)


def selected_runs(scores: pd.DataFrame, groups: list[str], metric: str) -> pd.DataFrame:
    """Each run's selected variant and its scores, indexed by (method, seed): the leaderboard's selection rule
    applied seed by seed, so every mean it takes is over one run."""
    picks = []
    for seed, runs in scores.groupby("seed"):
        selection = leaderboard.summarise(runs, groups, metric)[1]
        picks.append(selection[selection["pick"] == "selected"].assign(seed=seed))
    columns = {"id_mean": "id", "ood_mean": "ood", "er_mean": "er"}
    return pd.concat(picks).rename(columns=columns).set_index(["method", "seed"])[["variant", *columns.values()]]


def path_claim(scores: pd.DataFrame, selected: pd.DataFrame) -> tuple[str, Effect | None, str, list[str]]:
    """WiSE-FT: per seed, the selected alpha's OOD above its ends' line (cell, effect, verdict, notes)."""
    runs = scores[scores["method"] == "wise-ft"]
    effect, oracle, picked = {}, {}, {}
    for seed, run in runs.groupby("seed"):
        path = run.set_index(run["variant"].map(alpha_of))[["id", "ood"]]
        if not {0.0, 1.0} <= set(path.index):
            alphas = ", ".join(f"{a:g}" for a in sorted(path.index))
            return f"not computed: seed {seed}'s path lacks alpha 0 or 1 (recorded: {alphas})", None, "–", []
        picked[seed] = alpha_of(selected.loc[("wise-ft", seed), "variant"])
        effect[seed] = above_line(path, picked[seed])
        oracle[seed] = max((above_line(path, a) for a in path.index if 0 < a < 1), default=math.nan)
    measured = Effect.of(pd.Series(effect))
    ends = sum(a in (0.0, 1.0) for a in picked.values())
    cell = f"{measured.text()} (selected alpha {', '.join(f'{a:g}' for a in picked.values())}"
    cell += f"; an end in {ends} of {len(picked)} seeds, effect 0 there)" if ends else ")"
    notes = [f"WiSE-FT: effect = OOD(α) − [OOD(0) + (ID(α) − ID(0)) · (OOD(1) − OOD(0)) / (ID(1) − ID(0))] at the α "
             "the selection split picks, the ends being the same run's alpha 0 (the pretrained model with its "
             "zero-shot head) and alpha 1 (its fine-tuned model); 0 where it picks an end. Oracle, the best "
             f"interior α on OOD test (an upper bound no user can pick): {Effect.of(pd.Series(oracle)).text()} points."]  # fmt: skip
    flat = [s for s, e in effect.items() if math.isnan(e)]
    if flat:
        notes.append(f"WiSE-FT: seed{'s' if len(flat) > 1 else ''} {', '.join(map(str, flat))} left out: the "
                     "path's ends have the same ID accuracy, so no line runs through them.")  # fmt: skip
    return cell, measured, measured.verdict(), notes


def versus_ft(selected: pd.DataFrame, claim: Claim, line: Line | str) -> tuple[str, Effect, str]:
    """LP-FT and the at-ID claims: per seed, the method's selected variant minus ft's of the same seed."""
    mine, ft = selected.xs(claim.method), selected.xs("ft")
    delta = {col: Effect.of(mine[col] - ft[col]) for col in ("ood", "id", "er")}
    if claim.kind == OOD:
        return f"ΔOOD {delta['ood'].text()}", delta["ood"], delta["ood"].verdict()
    er = f"ΔER {delta['er'].text()}" if isinstance(line, Line) else "ΔER: no line"
    cell = f"ΔOOD {delta['ood'].text()}; {er} (ΔID {delta['id'].text()})"
    if delta["ood"].n < 2:
        return cell, delta["ood"], delta["ood"].verdict()
    if delta["id"].mean < -ID_TOLERANCE:
        return cell, delta["ood"], f"{FAILS} (ID precondition: ΔID {delta['id'].mean:+.2f} < -{ID_TOLERANCE:g})"
    votes = [delta["ood"].verdict()] + ([delta["er"].verdict()] if isinstance(line, Line) else [])
    return cell, delta["ood"], HOLDS if HOLDS in votes else FAILS if set(votes) == {FAILS} else NOISE


def claims_rows(spec: ClaimsSpec, scores: pd.DataFrame, selected: pd.DataFrame,
                line: Line | str) -> tuple[list[list[str]], list[str]]:
    """One row per claim (claim, paper, effect, seeds, verdict), and the notes the rows need."""
    rows, notes = [], []
    present = set(selected.index.get_level_values("method"))
    for claim in spec.claims:
        label = f"{claim.method}: {claim.statement}"
        absent = [m for m in ([claim.method] if claim.kind == PATH else [claim.method, "ft"]) if m not in present]
        if absent:
            rows.append([label, claim.paper, f"not run ({', '.join(absent)}: no records)", "0", "–"])
            continue
        if claim.kind == PATH:
            cell, effect, verdict, more = path_claim(scores, selected)
            notes += more
        else:
            (cell, effect, verdict), more = versus_ft(selected, claim, line), []
        rows.append([label, claim.paper, cell, str(effect.n if effect else 0), verdict])
    if any(c.kind == OOD_OR_ER for c in spec.claims):
        notes.append(f"Δ = the method's selected variant minus ft's, seed by seed. ΔER: effective robustness (OOD minus "
                     f"what the suite's line predicts from ID); the line: {line.source}." if isinstance(line, Line) else
                     f"ΔER not computed, no effective-robustness line: {line}; those claims are judged on ΔOOD only.")  # fmt: skip
    return rows, notes


def score_table(title: str, frame: pd.DataFrame) -> str:
    """A leaderboard frame (mean ± stderr columns) as a markdown table of ID, OOD and effective robustness."""
    header, rows, _ = formats.table_cells(formats.Table("claims", title, frame, ("variant",), ("id", "ood", "er")))
    return f"## {title}\n\n{formats.md_rows(header, rows)}"


def missing_text(name: str, spec: ClaimsSpec, planned, have: set[str], results: Path) -> str:
    """Which planned runs have no record, by method, and the command that runs them; '' when none is missing.
    `have`: the planned runs' ids that have a record."""
    missing: dict[str, list[int]] = {}
    for cfg in planned:
        if cfg.run_id not in have:
            missing.setdefault(cfg.method, []).append(cfg.seed)
    if not missing:
        return ""
    seeds = sorted({cfg.seed for cfg in planned})
    asked = "" if tuple(seeds) == spec.seeds else f" --seed {' '.join(map(str, seeds))}"
    lines = [f"**Missing runs**: {sum(map(len, missing.values()))} of {len(planned)} planned runs have no record in "
             f"{Path(results) / 'runs' / spec.suite}/; run them with `python -m benchmark reproduce {name} --run{asked} "
             f"--results {results}` (`--plan` lists them). "
             f"{'Until then the claims below use the runs that exist.' if have else 'No claim is tested without them.'}",
             ""]  # fmt: skip
    lines += [f"- {method}: seed{'s' if len(s) > 1 else ''} {', '.join(map(str, s))}" for method, s in missing.items()]
    return "\n".join(lines)


def render(name: str, results: Path, planned) -> str:
    """Claims table `name` from the records of its `planned` runs (their configs: method, seed, run_id)."""
    spec = CLAIMS[name]
    runs_dir = Path(results) / "runs" / spec.suite
    recs = records.load_records(results, spec.suite)
    ids = {cfg.run_id for cfg in planned}
    mine = [r for r in recs if r["run_id"] in ids]
    lines = [f"# {spec.title}", "",
             f"Ours: suite `{spec.suite}`, backbone `{spec.backbone}`, every method at its defaults, seeds "
             f"{', '.join(map(str, sorted({cfg.seed for cfg in planned})))}, from {runs_dir}/. Each run counts with "
             "the variant its selection split picks (never the best on OOD test). An effect is computed per seed "
             "against ft's run of that seed, in points of accuracy, then averaged over seeds.", ""]  # fmt: skip
    missing = missing_text(name, spec, planned, {r["run_id"] for r in mine}, results)
    lines += [missing, ""] if missing else []
    if mine:
        # Every record of the suite scores: the effective-robustness line is the suite's, over all its lp/ft runs.
        scores, groups, metric, line = leaderboard.primary_scores(recs)
        scores = scores[scores["run_id"].isin(ids)]
        rows, notes = claims_rows(spec, scores, selected_runs(scores, groups, metric), line)
        lines += [formats.md_rows(["claim", "paper", "measured effect ± stderr (points)", "seeds", "verdict"], rows), "",
                  RULE, "", *[f"- {n}" for n in notes], ""]  # fmt: skip
        variants, selection, _, _ = leaderboard.summarise(scores, groups, metric)
        lines += [score_table(f"Selected variants: {leaderboard.METRIC_TITLES[metric]} (%), mean ± stderr over seeds",
                              selection[selection["pick"] == "selected"]), ""]  # fmt: skip
        path = variants[variants["method"] == "wise-ft"]
        lines += [score_table("The WiSE-FT path: every alpha", path), ""] if len(path) else []
        took = sum(r.get("wall_s", 0) for r in mine)
        lines += [f"Time: these {len(mine)} runs took {took / 60:.0f} min, one after another (their records' wall_s).", ""]
        mixed = leaderboard.code_section(mine) + leaderboard.mixed_section(mine, leaderboard.data_label, "data",
                                                                           "copies of the data")
        lines += [mixed.strip(), ""] if mixed else []
    lines += [f"Generated by `benchmark reproduce {name}` from the records in {runs_dir}/; do not edit."]
    return "\n".join(lines) + "\n"
