"""`datasets/` holds cards and must never shadow Hugging Face `datasets`; a checkout reads the files it ships
in place (tests/test_wheel.py covers an installed wheel)."""
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.errors import BenchmarkError
from benchmark.resources import shipped, shipped_dir

ROOT = Path(__file__).resolve().parents[1]


def test_import_datasets_from_repo_root_is_hugging_face():
    code = "import datasets, sys; print(datasets.__file__); assert hasattr(datasets, 'load_dataset')"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "site-packages" in out.stdout and str(ROOT / "datasets") not in out.stdout


def test_datasets_folder_is_not_a_package():
    assert (ROOT / "datasets").is_dir()
    assert not (ROOT / "datasets" / "__init__.py").exists()
    assert not list((ROOT / "datasets").glob("*.py"))


def test_ci_runs_the_readme_test_command():
    ci_lines = [l for l in (ROOT / ".ci" / "run").read_text().splitlines() if "pytest" in l]
    assert len(ci_lines) == 1
    assert ci_lines[0] in (ROOT / "README.md").read_text()


def test_module_and_installed_script_both_run():
    import shutil

    out = subprocess.run([sys.executable, "-m", "benchmark", "list"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and "fmnist-c" in out.stdout and "tpgm" in out.stdout and "lite0" in out.stdout
    script = Path(sys.executable).parent / "benchmark"
    script = str(script) if script.exists() else shutil.which("benchmark")
    assert script, "the `benchmark` console script is not installed (pip install -e .)"
    out = subprocess.run([script, "run", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--method" in out.stdout and "--seed" in out.stdout


def test_a_checkout_reads_its_shipped_files_where_it_edits_them():
    assert shipped_dir("datasets") == ROOT / "datasets"
    assert shipped_dir("reference") == ROOT / "results" / "reference"
    assert shipped_dir("assets") == ROOT / "benchmark" / "models" / "assets"
    assert shipped("datasets", "fashion-mnist.toml") == ROOT / "datasets" / "fashion-mnist.toml"


def test_a_missing_shipped_file_is_a_one_line_error():
    with pytest.raises(BenchmarkError, match=r"^datasets/nope\.toml is missing from this installation") as e:
        shipped("datasets", "nope.toml")
    assert "\n" not in str(e.value)
