"""A suite's published results, regenerated from its records: the tables in the formats asked for, the figures
(PNG and SVG) embedded in the markdown, and the figures' plotted data (<suite>.figures.json), which is what a
drift check compares (never pixels)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

from benchmark.files import atomic_write_bytes
from benchmark.report import figures, formats, leaderboard
from benchmark.report.records import scan_records


class Published(NamedTuple):
    paths: list[Path]  # every file written
    markdown: str  # the whole leaderboard
    summary: str  # a newcomer's few lines (summary_text)


def publish(results: Path, suite: str, kinds=formats.DEFAULT_FORMATS, by: str = "corruption") -> Published:
    """Write <results>/<suite>.<format> for each format asked for, and the figures."""
    records, rejected = scan_records(results, suite)
    scored = leaderboard.primary_scores(records, by)
    b = leaderboard.board(suite, records, rejected, by, results, scored)
    paths, snippet, data = figures.write(results, suite, records, scored[3])
    data_path = Path(results) / f"{suite}.figures.json"
    atomic_write_bytes(data_path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())
    b = formats.with_figures(b, snippet)
    written = formats.write(b, results, kinds) + paths + [data_path]
    return Published(written, formats.markdown(b), summary_text(b, scored[2], Path(results)))


def summary_text(board: formats.Board, metric: str, results: Path) -> str:
    """Each method's selected variant (ID, OOD, effective robustness, seeds), read from the board's selection
    table, and where the full table and figure are."""
    selection = next(table.frame for table in board.tables if table.name == "selection")
    chosen = selection[selection["pick"] == "selected"]
    label = [name if row["variant"] == row["method"] else f"{name}: {row['variant']}"
             for name, (_, row) in zip(formats.row_labels(chosen), chosen.iterrows())]
    width = max(map(len, label)) + 2
    title = leaderboard.METRIC_TITLES.get(metric, metric).lower()
    lines = [f"{board.suite}: each method's variant chosen on the selection split; {title} (%), mean ± stderr over seeds",
             f"  {'method':<{width}}{'id':<14}{'ood':<14}{'eff. robustness':<17}seeds"]  # fmt: skip
    for name, (_, row) in zip(label, chosen.iterrows()):
        lines.append(f"  {name:<{width}}{formats.cell_text(row, 'id'):<14}{formats.cell_text(row, 'ood'):<14}"
                     f"{formats.cell_text(row, 'er'):<17}{row['seeds']}")  # fmt: skip
    figure = results / f"{board.suite}.scatter.png"
    lines.append(f"full table: {results / f'{board.suite}.md'}" + (f"; figure: {figure}" if figure.is_file() else ""))
    return "\n".join(lines)
