"""Effective robustness: logit-space lines, ER against them, the testbed reference and this suite's own family."""
import math
import subprocess
import sys

import pandas as pd
import pytest

from benchmark.errors import BenchmarkError
from benchmark.report import effective
from benchmark.report.effective import Line


def test_logit_and_sigmoid_at_known_points():
    assert effective.logit(0.5) == 0.0
    assert effective.logit(0.75) == pytest.approx(math.log(3))
    assert effective.logit(0.1) == pytest.approx(-math.log(9))
    assert effective.sigmoid(math.log(3)) == pytest.approx(0.75)
    assert effective.sigmoid(effective.logit([0.2, 0.9])) == pytest.approx([0.2, 0.9])


def test_a_fit_through_collinear_logit_points_recovers_the_line():
    ids = [0.6, 0.7, 0.8, 0.9]
    oods = effective.sigmoid(0.8 * effective.logit(ids) - 0.5)
    line = effective.fit_line(ids, oods, "toy")
    assert (line.slope, line.intercept) == (pytest.approx(0.8), pytest.approx(-0.5))
    assert (line.points, line.source) == (4, "toy")


def test_fit_refuses_accuracies_the_logit_axes_cannot_hold():
    with pytest.raises(BenchmarkError, match="strictly between 0 and 1"):
        effective.fit_line([0.5, 0.6, 0.7], [0.0, 0.3, 0.4], "toy")
    with pytest.raises(BenchmarkError, match="strictly between 0 and 1"):
        effective.fit_line([0.5, 0.6, 1.0], [0.2, 0.3, 0.4], "toy")
    with pytest.raises(BenchmarkError, match="2 distinct ID accuracies"):
        effective.fit_line([0.5, 0.5], [0.2, 0.3], "toy")


def test_effective_robustness_is_the_height_above_the_line():
    # logit(0.75) = ln 3, so with intercept -ln 3 the line predicts sigmoid(0) = 0.5 at ID 0.75.
    line = Line(1.0, -math.log(3), "toy", 3)
    assert effective.effective_robustness(line, 0.75, 0.5) == pytest.approx(0.0)
    assert effective.effective_robustness(line, [0.75, 0.75], [0.5, 0.62]) == pytest.approx([0.0, 0.12])
    # Slope 2 through the origin: at ID 0.75 the line predicts sigmoid(2 ln 3) = 9 / 10.
    assert effective.effective_robustness(Line(2.0, 0.0, "toy", 3), 0.75, 0.95) == pytest.approx(0.05)


def scores(rows):
    """variant_scores-shaped frame from (method, variant, id, ood, imagenet-a) rows, one run each."""
    frame = pd.DataFrame(rows, columns=["method", "variant", "id", "ood", "imagenet-a"])
    frame.insert(0, "run_id", [f"r{i}" for i in range(len(frame))])
    return frame


def on_line(id_acc, slope=0.9, intercept=-0.4):
    return float(effective.sigmoid(slope * effective.logit(id_acc) + intercept))


def test_family_line_says_why_with_too_few_points():
    few = scores([("lp", "lp", 0.7, 0.5, 0.2), ("ft", "ft", 0.8, 0.55, 0.3),
                  ("ft", "ft-ema", 0.81, 0.6, 0.3), ("wise-ft", "wise-ft", 0.82, 0.6, 0.3)])  # fmt: skip
    assert effective.family_line(few) == "2 points (lp, ft); a line needs 3: run a small lr/epochs sweep of lp and ft"
    repeated = scores([("ft", "ft", 0.8, 0.5, 0.2)] * 3)
    assert effective.family_line(repeated).startswith("3 points (ft), only 1 distinct in ID accuracy; a line needs 3")
    assert effective.family_line(scores([])).startswith("0 points (no lp, ft runs)")


def test_family_line_fits_the_family_runs_per_column():
    rows = [(m, m, i, on_line(i), on_line(i, 2.0, -3.0)) for m, i in [("lp", 0.7), ("lp", 0.75), ("ft", 0.8), ("ft", 0.85)]]
    rows.append(("ft", "ft", 0.9, 0.0, 0.0))  # a degenerate run: left out, and said
    rows.append(("zeroshot", "zeroshot", 0.6, 0.9, 0.9))  # not in the family
    line = effective.family_line(scores(rows))
    assert (line.slope, line.intercept, line.points) == (pytest.approx(0.9), pytest.approx(-0.4), 4)
    assert line.source == "fit over this suite's lp, ft runs (4 points; 1 left out: score missing, 0 or 1)"
    group = effective.family_line(scores(rows), metric_col_ood="imagenet-a")
    assert (group.slope, group.intercept) == (pytest.approx(2.0), pytest.approx(-3.0))
    with pytest.raises(BenchmarkError, match="no score column 'nope'"):
        effective.family_line(scores(rows), metric_col_ood="nope")


def test_the_testbed_file_parses_into_six_plausible_lines():
    lines = effective.testbed_lines()
    assert set(lines) == {"imagenet-v2", "imagenet-a", "imagenet-r", "imagenet-sketch", "objectnet", "ood"}
    # ImageNet-A's trend bends at ResNet-50's accuracy (it was collected against it): one line over it is steep.
    assert all(0 < line.slope < 3 for name, line in lines.items() if name != "imagenet-a")
    assert 2 < lines["imagenet-a"].slope < 4
    # 85 standard models; ResNet-50 at 0% on ImageNet-A and 5 models never run on ImageNet-R are no points.
    assert {n: line.points for n, line in lines.items()} == {"imagenet-v2": 85, "imagenet-a": 84, "imagenet-r": 80,
                                                            "imagenet-sketch": 85, "objectnet": 85, "ood": 80}  # fmt: skip
    assert "1 left out" in lines["imagenet-a"].source and "left out" not in lines["imagenet-r"].source
    # ImageNet-V2 is the closest shift: at ResNet-50's 76.13% val the line predicts about its 63.2%.
    assert lines["imagenet-v2"].predict(0.7613) == pytest.approx(0.632, abs=0.01)


def test_line_for_uses_the_testbed_for_imagenet_and_the_family_elsewhere():
    full = scores([("ft", "ft", 0.8, 0.5, 0.2)]).assign(**{s: 0.5 for s in effective.TESTBED_SETS})
    assert effective.line_for("imagenet", full, "imagenet-a") == effective.testbed_lines()["imagenet-a"]
    assert effective.line_for("imagenet", full) == effective.testbed_lines()["ood"]
    partial = scores([("ft", "ft", 0.8, 0.5, 0.2)])  # only imagenet-a was run: its `ood` is not the testbed's
    assert "lack imagenet-v2, imagenet-r, imagenet-sketch, objectnet" in effective.line_for("imagenet", partial)
    with pytest.raises(BenchmarkError, match="no testbed line for 'fog'"):
        effective.line_for("imagenet", full, "fog")
    assert effective.line_for("domainnet", partial).startswith("1 point (ft);")


def test_nothing_is_read_at_import():
    # A fresh interpreter whose shipped() refuses: importing the module must not call it.
    code = ("import benchmark.resources as r\n"
            "def refuse(*a): raise SystemExit('read at import: ' + '/'.join(a))\n"
            "r.shipped = refuse\n"
            "import benchmark.report.effective as e\n"
            "try:\n    e.testbed_lines()\nexcept SystemExit:\n    print('read when called')\n")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout.strip()) == (0, "read when called"), done.stderr
