"""Planning: every suite has its own full recipe, every method on a suite trains with its budget unless it
declares a departure (then the record and tables show it), and `run --dry-run` prints the plan without data."""
import json

import pytest

from benchmark.__main__ import main
from benchmark.data import SUITES, SuiteSpec
from benchmark.errors import BenchmarkError
from benchmark.harness.plan import BUDGET_KEYS, OVERRIDE_SOURCE, RunConfig, departures, plan, resolve_hparams
from helpers import TEST_RECIPE
from methods import METHODS, Method


def every_pair():
    return [(suite, method) for suite in SUITES.names() for method in METHODS.names()]


@pytest.mark.parametrize("suite, method", every_pair())
def test_every_method_shares_its_suites_budget_except_declared_departures(suite, method):
    cls, recipe = METHODS.get(method), SUITES.get(suite).recipe
    hp = resolve_hparams(suite, cls, {})
    differing = {k for k in BUDGET_KEYS if k in hp and hp[k] != recipe.get(k)}
    assert differing <= set(cls.DEPARTURES), f"{method} on {suite} departs from the budget in {differing} undeclared"
    listed = departures(suite, cls, hp)
    assert set(listed) == differing
    assert all(d["source"] == cls.DEPARTURES[k] and d["suite"] == recipe[k] for k, d in listed.items())


def test_domainnet_trains_every_baseline_with_the_official_tpgm_recipe():
    """The defect this guards: on DomainNet, TPGM got its 50-epoch recipe and FT a generic 10-epoch one."""
    budgets = {m: {k: resolve_hparams("domainnet", METHODS.get(m), {}).get(k) for k in BUDGET_KEYS}
               for m in ("ft", "lp-ft", "wise-ft", "l2-sp", "tpgm", "ftp", "fsr", "soup")}  # fmt: skip
    assert all(b == budgets["tpgm"] for b in budgets.values())
    assert budgets["ft"] == {"optimizer": "sgd", "momentum": 0.9, "nesterov": True, "epochs": 50, "batch_size": 256,
                             "warmup_steps": 0, "grad_clip": 0.0}  # fmt: skip


def test_declared_departures_carry_a_source():
    for name in METHODS.names():
        cls = METHODS.get(name)
        assert set(cls.DEPARTURES) <= set(BUDGET_KEYS), name
        assert all(isinstance(s, str) and len(s) > 20 for s in cls.DEPARTURES.values()), name


def test_an_undeclared_budget_change_is_refused():
    class Sneaky(Method):
        HPARAMS = {"epochs": 100}

    Sneaky.name = "sneaky"
    with pytest.raises(ValueError, match=r"changes the shared budget \['epochs'\].*DEPARTURES"):
        resolve_hparams("fmnist-c", Sneaky, {})
    Sneaky.DEPARTURES = {"epochs": "a test's declared reason"}
    hp = resolve_hparams("fmnist-c", Sneaky, {})
    assert departures("fmnist-c", Sneaky, hp) == {"epochs": {"value": 100, "suite": 2, "source": "a test's declared reason"}}


def test_a_suite_without_a_full_recipe_is_refused_when_defined():
    recipe = {k: v for k, v in TEST_RECIPE.items() if k != "epochs"}
    with pytest.raises(ValueError, match=r"lacks \['epochs'\]"):
        SuiteSpec("half", "", lambda opts: None, recipe, {}, "lite0", 32, ("ft",))
    sgd_without_momentum = {k: v for k, v in TEST_RECIPE.items() if k != "momentum"}
    with pytest.raises(ValueError, match="momentum"):
        SuiteSpec("half", "", lambda opts: None, sgd_without_momentum, {}, "lite0", 32, ("ft",))


def test_command_line_budget_overrides_are_departures_of_their_own():
    (run,) = plan("fmnist-c", ["ft"], overrides={"epochs": 3, "lr": 0.01})
    assert run.departures == {"epochs": {"value": 3, "suite": 2, "source": OVERRIDE_SOURCE}}  # lr is not budget
    assert run.config.hparams["lr"] == 0.01
    (run,) = plan("fmnist-c", ["ft"], image_size=32, sizes={"n_train": 500, "n_test": 1000})
    assert run.departures == {"image_size": {"value": 32, "suite": 64, "source": OVERRIDE_SOURCE},
                              "sizes.n_train": {"value": 500, "suite": 2000, "source": OVERRIDE_SOURCE}}  # fmt: skip
    assert run.config.sizes["n_train"] == 500 and run.config.sizes["n_selection"] == 500


def test_run_id_hashes_the_sizes_the_run_uses_not_how_they_were_asked_for():
    (default,) = plan("fmnist-c", ["ft"])
    (same,) = plan("fmnist-c", ["ft"], sizes={"n_train": 2000, "corruptions": ",".join(default.config.sizes["corruptions"])})
    (other,) = plan("fmnist-c", ["ft"], sizes={"n_train": 1999})
    assert same.config.run_id == default.config.run_id and same.departures == default.departures == {}
    assert other.config.run_id != default.config.run_id


def test_method_names_come_from_registration_keys_and_tables_use_the_declared_order():
    assert all(METHODS.get(n).name == n for n in METHODS.names())
    assert METHODS.names()[:3] == ["zeroshot", "lp", "ft"]  # baselines first
    assert "name" not in vars(Method)  # a method that forgot its name used to be labelled `ft`


def dry_run(capsys, *argv) -> list[dict]:
    assert main(["run", "--dry-run", *argv]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_dry_run_on_domainnet_needs_no_data_and_shows_one_budget(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DOMAINNET_DIR", raising=False)

    def no_touching(*args, **kwargs):
        raise AssertionError("a dry run built a suite or a model")

    monkeypatch.setattr("benchmark.harness.run.prepare_suite", no_touching)
    monkeypatch.setattr("benchmark.harness.run.execute", no_touching)
    lines = dry_run(capsys, "--suite", "domainnet", "--seed", "0", "1", "--results", str(tmp_path))
    assert [(d["method"], d["seed"]) for d in lines] == [(m, s) for m in SUITES.get("domainnet").methods for s in (0, 1)]
    recipe = SUITES.get("domainnet").recipe
    for d in lines:
        assert set(d) >= {"suite", "method", "backbone", "seed", "hparams", "sizes", "run_id", "record_exists"}
        assert d["suite"] == "domainnet" and d["backbone"] == "clip:RN50/openai" and d["record_exists"] is False
        budget = {k: d["hparams"][k] for k in BUDGET_KEYS}
        expected = {k: d["departures"][k]["value"] if k in d["departures"] else recipe[k] for k in BUDGET_KEYS}
        assert budget == expected
        cfg = RunConfig(d["suite"], d["method"], d["backbone"], d["seed"], d["image_size"], d["hparams"], d["sizes"])
        assert d["run_id"] == cfg.run_id
    departing = {d["method"] for d in lines if d["departures"]}
    assert departing == {"lipsum-ft"}  # Lipsum-FT's own AdamW schedule, declared
    assert lines[0]["sizes"]["selection_fraction"] == 0.1  # resolved sizes, without reading the split files


def test_dry_run_says_which_records_exist(tmp_path, capsys):
    from helpers import TINY_SIZES, tiny_run

    argv = ["--suite", "fmnist-c", "--method", "ft", "lp", "--image-size", "32", "--epochs", "1", "--results", str(tmp_path),
            "--size", *TINY_SIZES]  # fmt: skip
    before = dry_run(capsys, *argv)
    assert [d["record_exists"] for d in before] == [False, False]
    assert tiny_run(tmp_path, methods=("ft",)) == 0
    capsys.readouterr()
    after = dry_run(capsys, *argv)
    assert [d["record_exists"] for d in after] == [True, False]
    assert [d["run_id"] for d in after] == [d["run_id"] for d in before]
    assert (tmp_path / "runs" / "fmnist-c" / f"{after[0]['run_id']}.json").is_file()


def test_dry_run_errors_are_one_line(capsys):
    assert main(["run", "--dry-run", "--suite", "nope"]) == 2
    assert main(["run", "--dry-run", "--suite", "fmnist-c", "--size", "bogus=1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "unknown suite 'nope'" in err[0] and "unknown fmnist-c size option(s) ['bogus']" in err[1]


def test_the_domainnet_table_marks_declared_departures(tmp_path):
    """A declared departure is written into the record and shown beside the method in the tables."""
    from benchmark.report import leaderboard, records

    rows = [{"variant": "v", "eval": "selection", "role": "selection", "group": "selection", "metric": "acc", "value": 0.5, "n": 1},
            {"variant": "v", "eval": "real", "role": "id", "group": "real", "metric": "acc", "value": 0.6, "n": 1},
            {"variant": "v", "eval": "sketch", "role": "ood", "group": "sketch", "metric": "acc", "value": 0.4, "n": 1}]
    for run in plan("domainnet", ["ft", "lipsum-ft"]):
        cfg = run.config
        records.write_record(tmp_path, {"run_id": cfg.run_id, "config": cfg.to_dict(), "departures": run.departures,
                                        "evals": [{**r, "variant": cfg.method} for r in rows]})  # fmt: skip
    text, _ = leaderboard.render("domainnet", records.load_records(tmp_path, "domainnet"))
    assert "| ft | clip:RN50/openai | selected | ft |" in text
    assert "| lipsum-ft [budget: batch_size 256 (suite 256)" not in text  # equal values are no departure
    assert "lipsum-ft [budget: epochs 10 (suite 50); optimizer adamw (suite sgd); warmup_steps 500 (suite 0)]" in text
    assert "- lipsum-ft, epochs: Lipsum-FT's official schedule" in text


def test_a_dry_run_piped_into_head_stops_quietly():
    import subprocess
    import sys

    seeds = " ".join(map(str, range(200)))  # more lines than a pipe buffers, so head closes it mid-write
    out = subprocess.run(f"{sys.executable} -m benchmark run --dry-run --method ft lp l2-sp --seed {seeds} | head -1",
                         shell=True, capture_output=True, text=True)  # fmt: skip
    assert json.loads(out.stdout)["method"] == "ft" and "Traceback" not in out.stderr
