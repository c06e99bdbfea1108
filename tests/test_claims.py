"""`benchmark reproduce proxy`: the papers' claims judged from hand-built records whose answers are known."""
import pytest

from benchmark.__main__ import main
from benchmark.harness import fill
from benchmark.report import claims, records

SEEDS = (0, 1, 2)
FT_ID, FT_OOD = {0: 0.95, 1: 0.96, 2: 0.94}, {0: 0.50, 1: 0.52, 2: 0.51}
ZS = (0.70, 0.70, 0.60)  # selection, ID, OOD of the pretrained model with its zero-shot head


# WiSE-FT's middle (ID 93, OOD 65) over the line through its ends, (70, 60) and (ft ID, ft OOD), in points,
# averaged over the seeds: the line predicts 60 + (93 - 70) * (ft OOD - 60) / (ft ID - 70).
ABOVE = sum(65 - (60 + 23 * (100 * FT_OOD[s] - 60) / (100 * FT_ID[s] - 70)) for s in SEEDS) / len(SEEDS)


def planned(seeds=SEEDS) -> dict:
    """(method, seed) -> the planned run's config, as `reproduce proxy` plans it."""
    return {(run.config.method, run.config.seed): run.config for cmd in fill.commands("proxy", seeds) for run in cmd.runs}


def record(cfg, variants: dict) -> dict:
    """variants: {name: (selection, id, ood)} -> a finished record of the planned run `cfg`, one OOD group."""
    rows = []
    for variant, (sel, id_, ood) in variants.items():
        for name, role, value in (("selection", "selection", sel), ("test", "id", id_), ("shift", "ood", ood)):
            rows.append({"variant": variant, "eval": name, "role": role, "group": name, "metric": "acc", "value": value, "n": 500})
    return {"run_id": cfg.run_id, "status": "done", "config": cfg.to_dict(), "evals": rows, "wall_s": 60.0}


def known_answers(seed: int) -> dict[str, dict]:
    """Each method's variants at `seed`: WiSE's middle above its ends' line, LP-FT 5 points below FT, L2-SP
    within noise of FT, TPGM 2 ID points below FT (with more OOD), FTP 3 OOD points above FT at FT's ID."""
    i, o = FT_ID[seed], FT_OOD[seed]
    return {
        "zeroshot": {"zeroshot": ZS},
        "ft": {"ft": (0.9, i, o)},
        "lp": {"lp": (0.8, 0.85 + 0.01 * seed, 0.62)},
        "lp-ft": {"lp-ft": (0.9, i, o - 0.05 + 0.002 * seed)},
        "wise-ft": {"wise-ft@0": ZS, "wise-ft@0.5": (0.95, 0.93, 0.65), "wise-ft@1": (0.9, i, o)},
        "l2-sp": {"l2-sp": (0.9, i, o + (0.002, -0.003, 0.004)[seed])},
        "tpgm": {"tpgm": (0.9, i - 0.02, o + 0.05)},
        "ftp": {"ftp": (0.9, i, o + 0.03 + 0.001 * seed)},
    }  # fmt: skip


def write(results, seeds=SEEDS, answers=known_answers, skip=("fsr",)) -> None:
    plans = planned(seeds)
    for seed in seeds:
        for method, variants in answers(seed).items():
            if method not in skip:
                records.write_record(results, record(plans[method, seed], variants))


def rows(text: str) -> dict[str, list[str]]:
    """The claims table: method -> [paper, effect, seeds, verdict]."""
    out = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 5 and ": " in cells[0]:
            out[cells[0].split(":")[0]] = cells[1:]
    return out


def render(results, seeds=SEEDS) -> str:
    return claims.render("proxy", results, list(planned(seeds).values()))


def test_known_answers_get_their_verdicts(tmp_path):
    write(tmp_path)
    text = render(tmp_path)
    got = rows(text)
    assert got["wise-ft"][1].startswith(f"{ABOVE:+.2f} ± ")
    assert "(selected alpha 0.5, 0.5, 0.5)" in got["wise-ft"][1]
    assert got["wise-ft"][2:] == ["3", "holds"]
    assert got["lp-ft"][1].startswith("ΔOOD -4.80 ± 0.12") and got["lp-ft"][3] == "does not hold"
    assert got["l2-sp"][1].startswith("ΔOOD +0.10 ± 0.21; ΔER +0.10 ± 0.21 (ΔID +0.00 ± 0.00)")  # same ID: ΔER = ΔOOD
    assert got["l2-sp"][3] == "within noise"
    assert got["tpgm"][3] == "does not hold (ID precondition: ΔID -2.00 < -1)"  # though its OOD is 5 points up
    assert got["ftp"][1].startswith("ΔOOD +3.10 ± 0.06") and got["ftp"][3] == "holds"
    assert got["fsr"] == [claims.PROXY.claims[-1].paper, "not run (fsr: no records)", "0", "–"]
    assert "**Missing runs**: 3 of 27 planned runs have no record" in text and "- fsr: seeds 0, 1, 2" in text
    assert claims.RULE in text
    assert "the line: fit over this suite's lp, ft runs (6 points)" in text
    # the per-method table the claims come from: selected variants, mean ± stderr over seeds
    assert "| wise-ft | wise-ft@0.5 | 3 | 93.0 ± 0.0 | 65.0 ± 0.0 |" in text
    assert "| ft | ft | 3 | 95.0 ± 0.6 | 51.0 ± 0.6 |" in text
    assert "Time: these 24 runs took 24 min" in text


def test_the_selection_split_picks_the_wise_ft_alpha_not_the_ood_test(tmp_path):
    """Selection prefers the fine-tuned end: the effect there is 0 (the path's best interior point is the oracle,
    shown but not judged)."""

    def answers(seed):
        out = known_answers(seed)
        out["wise-ft"]["wise-ft@0.5"] = (0.5, 0.93, 0.65)
        return out

    write(tmp_path, answers=answers)
    text = render(tmp_path)
    assert rows(text)["wise-ft"][1:] == [
        "+0.00 ± 0.00 (selected alpha 1, 1, 1; an end in 3 of 3 seeds, effect 0 there)", "3", "within noise"]
    assert f"Oracle, the best interior α on OOD test (an upper bound no user can pick): {ABOVE:+.2f} ± " in text


def test_one_seed_has_no_stderr_and_no_verdict(tmp_path):
    write(tmp_path, seeds=(0,))
    got = rows(render(tmp_path, seeds=(0,)))
    assert got["lp-ft"][1:] == ["ΔOOD -5.00 (1 seed: no stderr)", "1", "no verdict (1 seed: no stderr)"]
    assert got["wise-ft"][3] == got["tpgm"][3] == "no verdict (1 seed: no stderr)"


def test_missing_runs_are_named_with_the_command_and_no_number_is_invented(tmp_path):
    text = render(tmp_path / "empty")
    assert "**Missing runs**: 27 of 27 planned runs have no record" in text
    assert f"`python -m benchmark reproduce proxy --run --results {tmp_path / 'empty'}`" in text
    assert "No claim is tested without them." in text
    assert "- wise-ft: seeds 0, 1, 2" in text
    assert not rows(text) and "±" not in text and "holds" not in text


def test_without_a_line_the_at_id_claims_are_judged_on_ood_only(tmp_path):
    write(tmp_path, seeds=(0, 1), skip=("fsr", "lp"))  # 2 ft runs: a line needs 3 points
    text = render(tmp_path, seeds=(0, 1))
    assert rows(text)["ftp"][1:] == ["ΔOOD +3.05 ± 0.05; ΔER: no line (ΔID +0.00 ± 0.00)", "2", "holds"]
    assert "ΔER not computed, no effective-robustness line: " in text and "judged on ΔOOD only" in text


def test_only_the_planned_runs_count(tmp_path):
    write(tmp_path)
    other = planned()["ft", 0]
    other = type(other)(**{**other.to_dict(), "hparams": {**other.hparams, "lr": other.hparams["lr"] / 10}})
    records.write_record(tmp_path, record(other, {"ft": (0.99, 0.99, 0.10)}))  # another ft setting, seed 0
    got = rows(render(tmp_path))
    assert got["lp-ft"][1].startswith("ΔOOD -4.80 ± 0.12") and got["lp-ft"][2] == "3"


def test_cli_plans_27_runs_and_writes_the_table(tmp_path, capsys):
    assert main(["reproduce", "proxy", "--plan", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert ("python -m benchmark run --suite digits --method zeroshot ft lp lp-ft wise-ft l2-sp tpgm ftp fsr "
            "--backbone digitnet --seed 0 1 2") in out  # fmt: skip
    assert out.count("  to run  ") == 27
    assert f"27 runs: 0 with a record in {tmp_path / 'runs' / 'digits'}/, 27 to run" in out
    assert not (tmp_path / "reproduce").exists()
    write(tmp_path)
    assert main(["reproduce", "proxy", "--results", str(tmp_path)]) == 0
    assert "wise-ft: the interpolation path" in (tmp_path / "reproduce" / "proxy.md").read_text()


@pytest.mark.parametrize("kind", [claims.PATH, claims.OOD, claims.OOD_OR_ER])
def test_every_claim_kind_is_in_the_proxy(kind):
    assert kind in {c.kind for c in claims.PROXY.claims}
    assert {c.method for c in claims.PROXY.claims} | {"zeroshot", "ft", "lp"} == set(claims.PROXY.methods)


def test_run_fills_the_missing_runs_through_the_harness_then_judges(tmp_path, capsys, monkeypatch):
    """--run plans the 27 runs as `run` would and executes them (faked here: they write known answers)."""
    from benchmark.harness import run as harness_run
    from benchmark.harness.run import Outcome

    monkeypatch.setattr("benchmark.harness.fill.missing_data", lambda *a: {})
    monkeypatch.setattr(harness_run, "prepare_suite", lambda cfg, *a, **k: object())
    ran = []

    def execute(cfg, suite, results, **kwargs):
        ran.append(cfg.run_id)
        rec = record(cfg, {**known_answers(cfg.seed), "fsr": {"fsr": (0.9, FT_ID[cfg.seed], FT_OOD[cfg.seed])}}[cfg.method])
        return Outcome(cfg.run_id, records.write_record(results, rec), "done", rec)

    monkeypatch.setattr(harness_run, "execute", execute)
    assert main(["reproduce", "proxy", "--run", "--results", str(tmp_path), "--no-progress"]) == 0
    assert ran == [cfg.run_id for cfg in planned().values()]
    got = rows((tmp_path / "reproduce" / "proxy.md").read_text())
    assert got["fsr"][1:] == ["ΔOOD +0.00 ± 0.00; ΔER +0.00 ± 0.00 (ΔID +0.00 ± 0.00)", "3", "within noise"]
    assert got["wise-ft"][3] == "holds" and "Missing runs" not in capsys.readouterr().out
