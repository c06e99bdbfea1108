"""A built wheel, installed into a fresh virtual environment and used outside the repository, works: it
carries every module and shipped file, installs no top-level `datasets`, and records the same code identity
as the checkout."""
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from benchmark.report import records

ROOT = Path(__file__).resolve().parents[1]
# What `pip install .` builds from.
BUILD_INPUTS = ("pyproject.toml", "README.md", "benchmark", "methods", "datasets", "results/reference")
# Shipped folders of the checkout -> their place in the wheel (pyproject.toml).
SHIPPED_AS = {"datasets": "benchmark/_shipped/datasets", "results/reference": "benchmark/_shipped/reference",
              "benchmark/models/assets": "benchmark/models/assets"}
TINY_RUN = ["--suite", "fmnist-c", "--method", "ft", "--epochs", "1", "--image-size", "32", "--no-progress", "--workers", "1",
            "--size", "n_train=48", "n_selection=16", "n_test=24", "n_ood=8", "severities=(3,)",
            "corruptions=('fog','contrast')"]  # fmt: skip


def sh(args, **kwargs) -> str:
    out = subprocess.run(args, capture_output=True, text=True, **kwargs)
    assert out.returncode == 0, f"{args} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `pip install .` would build, built from a copy so the checkout gets no build/ folder."""
    tmp = tmp_path_factory.mktemp("wheel")
    for name in BUILD_INPUTS:
        source, copy = ROOT / name, tmp / "src" / name
        if source.is_dir():
            shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy)
    sh([sys.executable, "-m", "pip", "wheel", "-q", "--no-cache-dir", "--no-deps", "--no-build-isolation", "--no-index",
        "-w", tmp / "dist", tmp / "src"])  # fmt: skip
    (built,) = (tmp / "dist").glob("oodbench-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> dict:
    """A fresh environment holding only the wheel; the dependencies are seen through a path file pointing at
    this environment's site-packages (its own path files, among them oodbench's editable finder, do not run
    from there). Commands run from an empty folder with HOME and the cache in tmp."""
    tmp = tmp_path_factory.mktemp("installed")
    venv.create(tmp / "venv", with_pip=False)
    python = tmp / "venv" / "bin" / "python"
    sh([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-cache-dir", "--no-deps", "--no-index",
        wheel])  # fmt: skip
    site = Path(sh([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip())
    deps = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    (site / "oodbench_test_dependencies.pth").write_text("".join(f"{d}\n" for d in sorted(deps)))
    (tmp / "work").mkdir()
    (tmp / "home").mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "XDG_CACHE_HOME")}
    env.update(HOME=str(tmp / "home"), OODBENCH_CACHE=str(tmp / "cache"), HF_HUB_OFFLINE="1")
    return {"python": python, "benchmark": tmp / "venv" / "bin" / "benchmark", "site": site, "results": tmp / "results",
            "run": dict(cwd=tmp / "work", env=env)}  # fmt: skip


def test_the_wheel_holds_every_module_and_shipped_file_and_only_two_top_level_names(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {p.relative_to(ROOT).as_posix() for package in ("benchmark", "methods")
                for p in (ROOT / package).rglob("*.py")}  # fmt: skip
    expected |= {f"{SHIPPED_AS[folder]}/{p.relative_to(ROOT / folder).as_posix()}" for folder in SHIPPED_AS
                 for p in (ROOT / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts}  # fmt: skip
    assert expected <= names, sorted(expected - names)
    assert {n.split("/")[0] for n in names if ".dist-info/" not in n} == {"benchmark", "methods"}


def test_the_installed_package_uses_its_own_copy_and_hugging_face_datasets(installed):
    code = ("import benchmark, datasets; from benchmark.resources import shipped_dir; print(benchmark.__file__, "
            "shipped_dir('datasets'), hasattr(datasets, 'load_dataset'), datasets.__file__)")  # fmt: skip
    package, cards, hugging_face, datasets_file = sh([installed["python"], "-c", code], **installed["run"]).split()
    assert Path(package).is_relative_to(installed["site"]) and Path(cards).is_relative_to(installed["site"])
    assert hugging_face == "True" and not Path(datasets_file).is_relative_to(installed["site"])


def test_list_prepare_and_reproduce_work_outside_the_repository(installed):
    listed = sh([installed["benchmark"], "list"], **installed["run"])
    assert "fmnist-c" in listed and "tpgm" in listed and "lite0" in listed and "objectnet" in listed
    prepared = sh([installed["benchmark"], "prepare", "fashion-mnist"], **installed["run"])
    assert "ok  train: 60000 images, 10 classes" in prepared and "ok  test: 10000 images" in prepared
    reproduced = sh([installed["benchmark"], "reproduce", "--results", installed["results"]], **installed["run"])
    assert "# TPGM (CVPR 2023), CLIP ViT-B/16 fine-tuned on ImageNet" in reproduced
    assert "| ft | published | 84.27 | 74.78 |" in reproduced  # read from the shipped reference table
    assert (installed["results"] / "reproduce" / "tpgm-imagenet.md").is_file()


def test_a_tiny_run_records_the_code_identity_of_the_checkout(installed):
    results = installed["results"]
    out = sh([installed["benchmark"], "run", *TINY_RUN, "--results", results], **installed["run"])
    assert "fmnist-c: each method's variant chosen on the selection split" in out and (results / "fmnist-c.md").is_file()
    (record,) = (results / "runs" / "fmnist-c").glob("ft-*.json")
    code = records.read_record(record)["code"]
    # Computed afresh (not the session's cached value): the same source gives the same hash, installed or not.
    assert code["source_sha256"] == records.code_identity.__wrapped__()["source_sha256"]
    assert code["commit"] is None  # an installed package is not a git checkout
