"""Leaderboard formats (markdown, CSV, LaTeX, HTML) and `--by severity` on hand-built records, the CLI's
one-line errors for them, and `benchmark prepare imagenet`'s text."""
import html

import pytest

from benchmark.__main__ import main
from benchmark.report import effective, formats, leaderboard, records

ODD = "odd_name%&#"  # a method name with every character LaTeX needs escaped here


def record(method, seed, sel, id_, ood, departures=None):
    """A finished record shaped like results/runs/fmnist-c/*.json; ood: {"fog@1": accuracy, ...}."""
    rows = [{"eval": "selection", "group": "selection", "metric": "acc", "n": 500, "role": "selection", "value": sel},
            {"eval": "fmnist", "group": "fmnist", "metric": "acc", "n": 1000, "role": "id", "value": id_}]
    rows += [{"eval": e, "group": e.split("@")[0], "metric": "acc", "n": 250, "role": "ood", "value": v} for e, v in ood.items()]
    config = {"backbone": "lite0", "hparams": {"epochs": 2, "lr": 0.05}, "image_size": 64, "method": method,
              "pretrained": True, "seed": seed, "sizes": {}, "suite": "fmnist-c"}
    return {"run_id": f"{method}-{seed}", "config": config, "departures": departures or {},
            "evals": [{**r, "variant": method} for r in rows], "suite_notes": {"sizes": {"severities": [1, 3]}}}  # fmt: skip


EPOCHS_1 = {"epochs": {"value": 1, "suite": 50, "source": "command line"}}
RECORDS = [
    record("ft", 0, 0.8, 0.9, {"fog@1": 0.6, "fog@3": 0.4, "snow@1": 0.8, "snow@3": 0.5}),
    record("ft", 1, 0.7, 0.8, {"fog@1": 0.5, "fog@3": 0.3, "snow@1": 0.7, "snow@3": 0.6}),
    record(ODD, 0, 0.85, 0.95, {"fog@1": 0.9, "fog@3": 0.2, "snow@1": 0.6, "snow@3": 0.1}, EPOCHS_1),
    record("lp", 0, 0.6, 0.95, {"fog@1": 0.5, "fog@3": 0.5, "snow@1": 0.5, "snow@3": 0.5}),  # ties ODD's id
]  # fmt: skip
# Every variant, by hand (percent): selection, id, ood, fog, snow. ft: two seeds, ood per seed
# mean(fog, snow) = 0.575 and 0.525; ODD: fog (0.9+0.2)/2, snow (0.6+0.1)/2, ood 0.45.
ODD_TEX = r"odd\_name\%\&\#"
# er: ood above the line through the lp and ft runs (test_effective_robustness_is_measured_from_the_lp_ft_line).
LATEX_ROWS = [
    r"ft & lite0 & ft & 2 & 75.0 $\pm$ 5.0 & 85.0 $\pm$ 5.0 & \textbf{55.0 $\pm$ 2.5} & \textbf{1.1 $\pm$ 3.1} & 45.0 $\pm$ 5.0 & \textbf{65.0 $\pm$ 0.0} \\",
    rf"{ODD_TEX} [budget: epochs 1 (suite 50)] & lite0 & {ODD_TEX} & 1 & \textbf{{85.0}} & \textbf{{95.0}} & 45.0 & -7.2 & \textbf{{55.0}} & 35.0 \\",
    r"lp & lite0 & lp & 1 & 60.0 & \textbf{95.0} & 50.0 & -2.2 & 50.0 & 50.0 \\",
]  # fmt: skip


@pytest.fixture(scope="module")
def board():
    return leaderboard.board("fmnist-c", RECORDS)


def tabular_rows(tex: str, label: str) -> list[str]:
    """The body rows of the table environment labelled `label`."""
    block = tex.split(rf"\label{{{label}}}")[1].split(r"\end{table}")[0]
    return block.split("\\midrule\n")[1].split("\n\\bottomrule")[0].splitlines()


def test_latex_has_booktabs_bolds_the_best_mean_per_column_and_escapes(board):
    tex = formats.latex(board)
    assert tex.count(r"\toprule") == tex.count(r"\midrule") == tex.count(r"\bottomrule") == 2
    assert sorted(tabular_rows(tex, "tab:fmnist-c-variants")) == sorted(LATEX_ROWS)
    assert "method & backbone & variant & seeds & selection & id & ood & er & fog & snow \\\\" in tex
    selection = tabular_rows(tex, "tab:fmnist-c-selection")
    assert len(selection) == 6  # 3 methods x (selected, oracle)
    # id: ODD and lp tie at 95.0 (both bold, in both picks); ood: ft's 55.0 is the best
    assert sum(r"\textbf{95.0}" in r for r in selection) == 4 and sum(r"\textbf{55.0 $\pm$ 2.5}" in r for r in selection) == 2
    assert ODD not in tex and r"\caption{fmnist-c: Every variant. Top-1 accuracy (\%), mean $\pm$ standard error" in tex
    assert r"\paragraph{Departures from the suite's training budget}" in tex and rf"\item {ODD_TEX}, epochs: command line" in tex


def test_html_is_one_escaped_page_holding_every_number(board):
    page = formats.page(board)
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page and "<script>" in page
    assert "<link" not in page and "src=" not in page  # self-contained
    assert ODD not in page and html.escape(ODD) in page
    for t in board.tables:
        header, rows, bold = formats.table_cells(t)
        assert page.count("<tr>") >= len(rows) + 1
        for row, flags in zip(rows, bold):
            for text, strong in zip(row, flags):
                assert (f"<strong>{html.escape(text)}</strong>" if strong else f">{html.escape(text)}<") in page
    assert "<strong>55.0 ± 2.5</strong>" in page and "<strong>95.0</strong>" in page
    assert "<h2>Departures from the suite&#x27;s training budget</h2>" in page


def test_markdown_keeps_the_budget_mark_and_departures(board):
    text = formats.markdown(board)
    assert f"| {ODD} [budget: epochs 1 (suite 50)] | lite0 | {ODD} | 1 | 85.0 | 95.0 | 45.0 | -7.2 | 55.0 | 35.0 |" in text
    assert f"- {ODD}, epochs: command line" in text and "**" not in text.split("## Every variant")[1].split("**Effective")[0]


def test_by_severity_averages_the_corruptions_at_each_severity():
    variants, _, groups, _ = leaderboard.tables(RECORDS, by="severity")
    assert groups == ["sev1", "sev3"]
    ft = variants.set_index("method").loc["ft"]
    # ft seed 0: sev1 (0.6+0.8)/2 = 0.7, sev3 (0.4+0.5)/2 = 0.45; seed 1: sev1 0.6, sev3 0.45
    assert ft["sev1_mean"] == pytest.approx(0.65) and ft["sev1_stderr"] == pytest.approx(0.05)
    assert ft["sev3_mean"] == pytest.approx(0.45) and ft["ood_mean"] == pytest.approx(0.55)
    odd = variants.set_index("method").loc[ODD]
    assert (odd["sev1_mean"], odd["sev3_mean"]) == pytest.approx((0.75, 0.15))
    text, _ = leaderboard.render("fmnist-c", RECORDS, by="severity")
    assert "| ft | lite0 | ft | 2 | 75.0 ± 5.0 | 85.0 ± 5.0 | 55.0 ± 2.5 | 1.1 ± 3.1 | 65.0 ± 5.0 | 45.0 ± 0.0 |" in text


def test_effective_robustness_is_measured_from_the_lp_ft_line_and_reaches_every_format():
    line = effective.fit_line([0.9, 0.8, 0.95], [0.575, 0.525, 0.5], "by hand")  # ft seeds 0 and 1, lp: (id, ood)
    odd_er = 0.45 - line.predict(0.95)  # ODD: ood (fog 0.55 + snow 0.35) / 2
    ft_er = [0.575 - line.predict(0.9), 0.525 - line.predict(0.8)]
    variants, selection, _, _ = leaderboard.tables(RECORDS)
    er = variants.set_index("method")["er_mean"]
    assert er[ODD] == pytest.approx(odd_er) and er["ft"] == pytest.approx(sum(ft_er) / 2)
    assert f"{100 * odd_er:.1f}" == "-7.2"  # what the LaTeX and markdown rows above show
    b = leaderboard.board("fmnist-c", RECORDS)
    assert all("er" in t.columns for t in b.tables)
    assert "| ood | er |" in formats.markdown(b) and "| ood | er | fog |" in formats.markdown(b)
    assert "& er &" in formats.latex(b) and "<th>er</th>" in formats.page(b) and "er_mean" in formats.csv(b)
    assert "the line: fit over this suite's lp, ft runs (3 points)" in formats.markdown(b)
    without_lp = leaderboard.board("fmnist-c", RECORDS[:3])
    assert "`er` is not computed: 2 points (ft); a line needs 3" in formats.markdown(without_lp)


def test_the_cli_writes_the_formats_asked_for_with_the_real_folder_in_the_footer(tmp_path, capsys):
    for r in RECORDS:
        records.write_record(tmp_path, r)
    assert main(["leaderboard", "--suite", "fmnist-c", "--results", str(tmp_path), "--format", "tex,html"]) == 0
    figures = ["fmnist-c.figures.json", *(f"fmnist-c.{k}.{f}" for k in ("heatmap", "scatter") for f in ("png", "svg"))]
    assert sorted(p.name for p in tmp_path.glob("fmnist-c.*")) == sorted(["fmnist-c.html", "fmnist-c.tex", *figures])
    assert main(["leaderboard", "--suite", "fmnist-c", "--results", str(tmp_path), "--by", "severity"]) == 0
    md = (tmp_path / "fmnist-c.md").read_text()
    assert md.endswith(f"Generated by `benchmark leaderboard` from {tmp_path}/runs/fmnist-c/; do not edit.\n")
    assert "| sev1 | sev3 |" in md and (tmp_path / "fmnist-c.csv").is_file()
    assert f"from {tmp_path}/runs/fmnist-c/" in (tmp_path / "fmnist-c.tex").read_text().splitlines()[0]


@pytest.mark.parametrize("argv, expected", [
    (["--format", "md,pdf"], "error: --format: unknown format 'pdf'; known: md, csv, tex, html (comma-separated)"),
    (["--format", ","], "error: --format: unknown format ','"),
    (["--by", "severity"], "error: --by severity needs OOD evals named <corruption>@<severity> (e.g. fog@3); "
                           "these records have OOD eval 'sketch'"),
])  # fmt: skip
def test_bad_leaderboard_options_are_one_line_exit_2(argv, expected, tmp_path, capsys):
    rec = record("ft", 0, 0.8, 0.9, {"sketch": 0.4})  # a suite of whole OOD sets, no severities
    rec["config"]["suite"] = "domainnet"
    records.write_record(tmp_path, rec)
    assert main(["leaderboard", "--suite", "domainnet", "--results", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(expected) and err.count("\n") == 1
    assert not list(tmp_path.glob("domainnet.*"))


def test_parse_formats_keeps_order_and_drops_repeats():
    assert formats.parse_formats("html, md,html") == ("html", "md")
