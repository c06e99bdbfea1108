"""Leaderboard renderers: markdown, CSV, LaTeX and HTML, all from one Board (see leaderboard.board).

Generic over the score columns: a Table shows the columns it is given, each read from the frame's
``<col>_mean``, ``<col>_stderr`` and ``<col>_n`` (see ``score_columns``), so a column added to the tables
reaches every format without a change here. Higher is better in every score column: LaTeX and HTML bold the
best mean per column and table, compared as displayed (one decimal), so cells that read the same are all bold.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from benchmark.errors import BenchmarkError
from benchmark.files import atomic_write_bytes

FORMATS = ("md", "csv", "tex", "html")
DEFAULT_FORMATS = ("md", "csv", "tex")
MISSING = "–"


@dataclass(frozen=True)
class Table:
    """Scores, mean ± stderr over seeds, beside the method's label and the label columns."""

    name: str  # "selection" or "variants": the CSV's `table` column, the LaTeX label
    title: str
    frame: pd.DataFrame
    labels: tuple[str, ...]  # label columns shown after the method, e.g. ("backbone", "variant")
    columns: tuple[str, ...]  # score columns shown


@dataclass(frozen=True)
class Grid:
    """A table of ready-made text cells (the mCE table), shown as it is."""

    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Note:
    """Text under the tables: a titled sentence (no sentence: the title is a heading) and its items."""

    title: str
    text: str
    items: tuple[str, ...]


@dataclass(frozen=True)
class Board:
    """Everything a leaderboard says, in every format."""

    suite: str
    intro: str  # what the numbers are; `backticks` mark code
    tables: tuple[Table, ...]
    extras: tuple[Grid | Note, ...]  # mCE, budget departures, mixed code or data, left-out records
    source: str  # the records' folder, named in the footer
    figures: str = ""  # markdown embedding the figures written beside the tables


def with_figures(board: Board, markdown_: str) -> Board:
    return replace(board, figures=markdown_)


def parse_formats(text: str) -> tuple[str, ...]:
    """`--format md,tex`: the formats asked for, each once, in the order given."""
    asked = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in asked if f not in FORMATS] or ([] if asked else [text])
    if unknown:
        raise BenchmarkError(f"--format: unknown format {unknown[0]!r}; known: {', '.join(FORMATS)} (comma-separated)")
    return tuple(dict.fromkeys(asked))


def score_columns(frame: pd.DataFrame) -> list[str]:
    """The score columns a frame of leaderboard.tables() holds, in its order."""
    return [c[: -len("_mean")] for c in frame.columns if c.endswith("_mean")]


def cell_text(row, col: str) -> str:
    """mean ± stderr in percent; a mean over fewer seeds than the row's says over how many."""
    mean, stderr, n, seeds = row[f"{col}_mean"], row[f"{col}_stderr"], row[f"{col}_n"], row["seeds"]
    if pd.isna(mean):
        return MISSING
    text = f"{100 * mean:.1f}" if n < 2 or pd.isna(stderr) else f"{100 * mean:.1f} ± {100 * stderr:.1f}"
    return text if n == seeds else f"{text} ({n} of {seeds} seeds)"


def displayed(mean: float) -> float:
    """A mean as the tables display it (percent, one decimal)."""
    return float(f"{100 * mean:.1f}")


def best(frame: pd.DataFrame, col: str) -> pd.Series:
    """Which rows hold the table's best mean of `col` as displayed (ties: all); none where every mean is missing."""
    means = frame[f"{col}_mean"].map(lambda m: m if pd.isna(m) else displayed(m))
    return means == means.max()


def row_labels(frame: pd.DataFrame) -> pd.Series:
    """Method name, with its setting where one method ran several ways (e.g. `ft (lr=0.01)`), and with its
    departures from the suite's training budget where it has any."""
    label = frame["method"].where(frame["setting"] == "", frame["method"] + " (" + frame["setting"] + ")")
    return label.where(frame["budget"] == "", label + " [budget: " + frame["budget"] + "]")


def table_cells(table: Table) -> tuple[list[str], list[list[str]], list[list[bool]]]:
    """(header, rows of cell texts, which cells are the best of their column): what each format lays out."""
    frame = table.frame
    header = ["method", *table.labels, "seeds", *table.columns]
    flags = {c: best(frame, c) for c in table.columns}
    rows, bold = [], []
    for (i, r), label in zip(frame.iterrows(), row_labels(frame)):
        rows.append([label, *[str(r[c]) for c in table.labels], str(r["seeds"])] + [cell_text(r, c) for c in table.columns])
        bold.append([False] * (len(table.labels) + 2) + [bool(flags[c][i]) for c in table.columns])
    return header, rows, bold


def plain(rows) -> list[list[bool]]:
    """No cell bold (the mCE grid)."""
    return [[False] * len(r) for r in rows]


def footer(source: str) -> str:
    return f"Generated by `benchmark leaderboard` from {source}; do not edit."


# --- markdown (today's format: no bold, so the terminal copy reads plainly)


def md_rows(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def md_extra(extra: Grid | Note) -> str:
    if isinstance(extra, Grid):
        return f"## {extra.title}\n\n{md_rows(extra.header, extra.rows)}\n\n"
    head = f"**{extra.title}**: {extra.text}" if extra.text else f"## {extra.title}"
    items = ["", *[f"- {item}" for item in extra.items]] if extra.items else []
    return "\n".join([head, *items]) + "\n\n"


def markdown(board: Board) -> str:
    parts = [f"# Leaderboard: {board.suite}\n\n{board.intro}\n\n"]
    for t in board.tables:
        header, rows, _ = table_cells(t)
        parts.append(f"## {t.title}\n\n{md_rows(header, rows)}\n\n")
    parts += [board.figures + "\n"] if board.figures else []
    parts += [md_extra(x) for x in board.extras]
    return "".join(parts) + footer(board.source) + "\n"


# --- CSV: the tables' frames, every column (scores as fractions), one `table` column naming the table


def csv_frame(board: Board) -> pd.DataFrame:
    return pd.concat([t.frame.assign(table=t.name) for t in board.tables], ignore_index=True)


def csv(board: Board) -> str:
    return csv_frame(board).to_csv(index=False, float_format="%.6g")


# --- LaTeX: a fragment for \input (needs \usepackage{booktabs}), one table environment per table

TEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
               "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", MISSING: "--"}  # fmt: skip


def tex_escape(text: str) -> str:
    return "".join(TEX_ESCAPES.get(ch, ch) for ch in str(text))


def with_code(text: str, escape, code) -> str:
    """Escaped text whose `backticked` parts are wrapped by `code` (markdown's inline code, in another format)."""
    parts = str(text).split("`")
    return "".join(code(escape(p)) if i % 2 else escape(p) for i, p in enumerate(parts))


def tex_text(text: str) -> str:
    return with_code(text, tex_escape, lambda s: rf"\texttt{{{s}}}")


def tex_tabular(header, rows, bold, align: str) -> list[str]:
    def cell(text, strong):
        return rf"\textbf{{{tex_escape(text)}}}" if strong else tex_escape(text)

    lines = [rf"\begin{{tabular}}{{{align}}}", r"\toprule", " & ".join(map(tex_escape, header)) + r" \\", r"\midrule"]
    lines += [" & ".join(cell(t, b) for t, b in zip(r, flags)) + r" \\" for r, flags in zip(rows, bold)]
    return lines + [r"\bottomrule", r"\end{tabular}"]


def tex_float(caption: str, label: str, tabular: list[str]) -> str:
    return "\n".join([r"\begin{table}[htbp]", r"\centering", rf"\caption{{{caption}}}", rf"\label{{{label}}}",
                      *tabular, r"\end{table}"]) + "\n\n"  # fmt: skip


def tex_extra(board: Board, extra: Grid | Note) -> str:
    if isinstance(extra, Grid):
        tabular = tex_tabular(extra.header, extra.rows, plain(extra.rows), "l" * len(extra.header))
        return tex_float(f"{tex_escape(board.suite)}: {tex_escape(extra.title)}.", f"tab:{board.suite}-mce", tabular)
    items = [r"\begin{itemize}", *[rf"\item {tex_text(i)}" for i in extra.items], r"\end{itemize}"] if extra.items else []
    return "\n".join([rf"\paragraph{{{tex_escape(extra.title)}}} {tex_text(extra.text)}".rstrip(), *items]) + "\n\n"


def latex(board: Board) -> str:
    parts = [f"% {footer(board.source)}\n% Needs \\usepackage{{booktabs}}.\n\n"]
    for t in board.tables:
        header, rows, bold = table_cells(t)
        align = "l" * (1 + len(t.labels)) + "r" * (1 + len(t.columns))
        caption = f"{tex_escape(board.suite)}: {tex_escape(t.title)}. {tex_text(board.intro)} Best mean per column in bold."
        parts.append(tex_float(caption, f"tab:{board.suite}-{t.name}", tex_tabular(header, rows, bold, align)))
    return "".join(parts + [tex_extra(board, x) for x in board.extras])


# --- HTML: one self-contained page; clicking a column header sorts its table (numbers by value)

CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{padding:.25em .6em;border-bottom:1px solid #ddd;white-space:nowrap}
th{cursor:pointer;text-align:left;border-bottom:2px solid #444}td.num{text-align:right}
th[data-dir=desc]::after{content:" \\25BC"}th[data-dir=asc]::after{content:" \\25B2"}
footer{color:#666;margin-top:2em}code{background:#f3f3f3;padding:0 .2em}"""

# A cell's data-key (a number; "" when missing) orders it; other cells order by their text. Missing values
# go last either way; the first click on a header puts the highest first.
SORT_JS = """for (const th of document.querySelectorAll("table.sortable th")) {
  th.addEventListener("click", () => {
    const body = th.closest("table").tBodies[0], col = th.cellIndex;
    const dir = th.dataset.dir === "desc" ? 1 : -1;
    for (const other of th.parentNode.cells) delete other.dataset.dir;
    th.dataset.dir = dir === 1 ? "asc" : "desc";
    const key = row => {
      const cell = row.cells[col], k = cell.dataset.key;
      return k === undefined ? cell.textContent : k === "" ? null : Number(k);
    };
    const rows = [...body.rows].sort((a, b) => {
      const x = key(a), y = key(b);
      if (x === null || y === null) return (x === null) - (y === null);
      return dir * (typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y)));
    });
    body.append(...rows);
  });
}"""


def esc(text) -> str:
    return html.escape(str(text), quote=True)


def html_text(text: str) -> str:
    return with_code(text, esc, lambda s: f"<code>{s}</code>")


def html_table(header, rows, bold, keys=None) -> str:
    """keys: per row, per cell, the number it sorts by (None: sort by text)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for i, (r, flags) in enumerate(zip(rows, bold)):
        cells = []
        for j, (text, strong) in enumerate(zip(r, flags)):
            key = keys[i][j] if keys else None
            attrs = "" if key is None else f' class="num" data-key="{"" if pd.isna(key) else f"{key:.6g}"}"'
            cells.append(f"<td{attrs}>{f'<strong>{esc(text)}</strong>' if strong else esc(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<table class="sortable"><thead><tr>{head}</tr></thead>\n<tbody>\n' + "\n".join(body)
            + "\n</tbody></table>\n")  # fmt: skip


def sort_keys(table: Table) -> list[list]:
    """Per row: None for label cells, the seed count, and each score's mean."""
    labels = [None] * (1 + len(table.labels))
    return [labels + [r["seeds"]] + [r[f"{c}_mean"] for c in table.columns] for _, r in table.frame.iterrows()]


def html_extra(extra: Grid | Note) -> str:
    if isinstance(extra, Grid):
        return f"<h2>{esc(extra.title)}</h2>\n" + html_table(extra.header, extra.rows, plain(extra.rows))
    title = esc(extra.title)
    head = f"<p><strong>{title}</strong>: {html_text(extra.text)}</p>" if extra.text else f"<h2>{title}</h2>"
    items = "".join(f"<li>{html_text(i)}</li>\n" for i in extra.items)
    return head + (f"\n<ul>\n{items}</ul>\n" if items else "\n")


def page(board: Board) -> str:
    parts = ['<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
             f"<title>Leaderboard: {esc(board.suite)}</title>\n<style>\n{CSS}\n</style>\n</head>\n<body>\n",
             f"<h1>Leaderboard: {esc(board.suite)}</h1>\n<p>{html_text(board.intro)} Best mean per column in bold; "
             "click a column header to sort.</p>\n"]  # fmt: skip
    for t in board.tables:
        header, rows, bold = table_cells(t)
        parts.append(f"<h2>{esc(t.title)}</h2>\n" + html_table(header, rows, bold, sort_keys(t)))
    parts += [html_extra(x) for x in board.extras]
    parts.append(f"<footer>{html_text(footer(board.source))}</footer>\n")
    parts.append(f"<script>\n{SORT_JS}\n</script>\n</body>\n</html>\n")
    return "".join(parts)


RENDERERS = {"md": markdown, "csv": csv, "tex": latex, "html": page}


def write(board: Board, folder: Path, formats) -> list[Path]:
    """Each asked-for format to <folder>/<suite>.<format>, atomically."""
    paths = []
    for fmt in formats:
        path = Path(folder) / f"{board.suite}.{fmt}"
        atomic_write_bytes(path, RENDERERS[fmt](board).encode())
        paths.append(path)
    return paths
