"""The committed results are what the committed records say: tables and figures regenerated from
results/runs/<suite>/ must equal the committed files (figures compared by their plotted data, not pixels)."""
import json
import shutil
from pathlib import Path

import pytest

from benchmark.report.publish import publish

RESULTS = Path(__file__).resolve().parents[1] / "results"


@pytest.mark.parametrize("suite", ["digits", "fmnist-c"])
def test_committed_tables_and_figures_regenerate_from_the_committed_records(suite, tmp_path):
    runs = tmp_path / "runs" / suite
    runs.mkdir(parents=True)
    for record in (RESULTS / "runs" / suite).glob("*.json"):  # superseded/ records are not tabulated
        shutil.copy(record, runs / record.name)
    paths = publish(tmp_path, suite, ("md", "csv", "tex")).paths
    for path in paths:
        committed = RESULTS / path.name
        assert committed.is_file(), f"{committed} is not committed"
        if path.suffix in (".png", ".svg"):
            continue  # pixels may differ with the font stack; the plotted data below may not
        if path.name.endswith(".figures.json"):
            assert json.loads(path.read_text()) == json.loads(committed.read_text()), "figure data drifted"
        else:
            assert path.read_text().replace(str(tmp_path), "results") == committed.read_text(), f"{path.name} drifted"
