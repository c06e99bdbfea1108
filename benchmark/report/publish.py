"""A suite's published results, regenerated from its records: the tables in the formats asked for, the figures
(PNG and SVG) embedded in the markdown, and the figures' plotted data (<suite>.figures.json), which is what a
drift check compares (never pixels)."""
from __future__ import annotations

import json
from pathlib import Path

from benchmark.files import atomic_write_bytes
from benchmark.report import figures, formats, leaderboard
from benchmark.report.records import scan_records


def publish(results: Path, suite: str, kinds=formats.DEFAULT_FORMATS, by: str = "corruption") -> tuple[list[Path], str]:
    """Write <results>/<suite>.<format> for each format asked for, and the figures; returns (paths, markdown)."""
    records, rejected = scan_records(results, suite)
    scored = leaderboard.primary_scores(records, by)
    b = leaderboard.board(suite, records, rejected, by, results, scored)
    paths, snippet, data = figures.write(results, suite, records, scored[3])
    data_path = Path(results) / f"{suite}.figures.json"
    atomic_write_bytes(data_path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())
    b = formats.with_figures(b, snippet)
    return formats.write(b, results, kinds) + paths + [data_path], formats.markdown(b)
