"""Records are validated on read: a damaged or tampered record is named in a one-line warning and left
out of the table, visibly, instead of blocking every table or corrupting it; a mean over fewer seeds than
its row says so."""
import json

import pytest

from benchmark.__main__ import main
from benchmark.report import leaderboard, records

pytestmark = pytest.mark.faults  # the fault suite: `pytest -m faults`


def record(method, seed, ood=None, value=0.8):
    ood = {"fog@1": 0.5, "blur@1": 0.6} if ood is None else ood
    rows = [{"variant": method, "eval": "selection", "role": "selection", "group": "selection", "metric": "acc", "value": value, "n": 4},
            {"variant": method, "eval": "clean", "role": "id", "group": "clean", "metric": "acc", "value": value, "n": 4}]
    rows += [{"variant": method, "eval": e, "role": "ood", "group": e.split("@")[0], "metric": "acc", "value": v, "n": 4}
             for e, v in ood.items()]  # fmt: skip
    config = {"suite": "toy", "method": method, "backbone": "lite0", "seed": seed, "hparams": {}, "sizes": {}}
    return {"run_id": f"{method}-{seed}", "config": config, "evals": rows}


def write(results, rec, text=None):
    path = records.record_path(results, "toy", rec["run_id"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text is not None else json.dumps(rec))
    return path


def test_bad_records_are_named_and_left_out(tmp_path, capsys):
    write(tmp_path, record("ft", 0))
    write(tmp_path, record("lp", 0, value=2.61))  # tampered: an accuracy of 261%
    nan = record("l2-sp", 0)
    nan["evals"][1]["value"] = float("nan")
    write(tmp_path, nan)
    write(tmp_path, record("tpgm", 0), text='{"run_id": "tpgm-0", "con')  # a killed write
    moved = record("fsr", 0)
    write(tmp_path, moved).rename(tmp_path / "runs" / "toy" / "fsr-7.json")  # renamed by hand
    dropped = record("ftp", 0)
    dropped["evals"] = [r for r in dropped["evals"] if not (r["eval"] == "fog@1")] + [
        {**dropped["evals"][2], "variant": "ftp-other"}]  # variants scored on different sets
    write(tmp_path, dropped)
    assert main(["leaderboard", "--suite", "toy", "--results", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    warnings = err.strip().splitlines()
    assert len(warnings) == 5 and all(w.startswith("warning: ") for w in warnings)
    assert "lp-0.json left out: lp selection acc = 2.61, not a fraction in [0, 1]" in err
    assert "l2-sp-0.json left out: l2-sp clean acc = nan" in err
    assert "unreadable record" in err and "tpgm-0.json" in err
    assert "it says run fsr-0 of suite toy, but lies at toy/fsr-7.json" in err
    assert "ftp-0.json left out: its variants were scored on different eval sets" in err
    table = (tmp_path / "toy.md").read_text()
    assert "**Left out**: 5 records could not be tabulated." in table and "- lp-0.json: " in table
    assert "| ft | lite0 | selected | ft | 1 | 80.0 | 55.0 |" in table
    assert "| lp |" not in table and "261" not in table


def test_a_mean_over_fewer_seeds_says_so(tmp_path):
    recs = [record("ft", 0), record("ft", 1, ood={"fog@1": 0.3})]  # seed 1 was not scored on blur
    text, _ = leaderboard.render("toy", recs)
    assert "| ft | lite0 | selected | ft | 2 | 80.0 ± 0.0 | 55.0 (1 of 2 seeds) |" in text
    row = next(line for line in text.splitlines() if line.startswith("| ft | lite0 | ft |"))
    assert "60.0 (1 of 2 seeds)" in row and "40.0 ± 10.0" in row  # blur from one seed; fog from both
