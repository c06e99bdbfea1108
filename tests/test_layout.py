"""The architecture, checked: data flows one way between the sub-packages, nothing reads data files at
import time, and the frozen reference exists exactly for the methods that declare they need it."""
import ast
import subprocess
import sys
from pathlib import Path

import torch

from methods import METHODS

ROOT = Path(__file__).resolve().parents[1]
# What each part may import (beyond itself and the foundation: errors, registry, files, resources).
ALLOWED = {
    "corruption": set(),
    "data": {"corruption"},
    "models": set(),
    "engine": {"data"},
    "methods": {"engine"},
    "report": {"corruption", "methods"},
    "harness": {"data", "models", "engine", "methods", "report"},
    "speed": {"corruption", "data", "engine", "harness", "methods", "models"},
    "cli": {"data", "models", "engine", "methods", "report", "harness", "speed", "corruption"},
}


def part_of(module: str) -> str | None:
    bits = module.split(".")
    if bits[0] == "methods":
        return "methods"
    if bits[0] != "benchmark":
        return None
    if len(bits) > 1 and bits[1] == "__main__":
        return "cli"
    return bits[1] if len(bits) > 1 and bits[1] in ALLOWED else "foundation"  # errors, registry, __version__...


def imports_of(path: Path) -> set[str]:
    """Every absolute import in a file, function-level ones included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return found


def test_every_import_points_downstream():
    files = list((ROOT / "benchmark").rglob("*.py")) + list((ROOT / "methods").rglob("*.py"))
    wrong = []
    for path in files:
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        mine = part_of(module)
        for target in imports_of(path):
            theirs = part_of(target)
            if theirs in (None, "foundation", mine):
                continue
            if mine == "foundation" or theirs not in ALLOWED[mine]:
                wrong.append(f"{module} -> {target}")
    assert not wrong, wrong


def test_importing_and_listing_everything_reads_no_data_file():
    """Registries load their modules lazily and modules read their class lists and cards on first use."""
    code = f"""
import builtins, io, pathlib
import torch, torchvision, timm, open_clip, pandas, numpy, PIL.Image, tqdm
read = []
real_open = io.open
data = tuple({str(ROOT)!r} + "/" + d for d in ("datasets", "results", "benchmark"))
def spy(file, *args, **kwargs):
    path = str(file)
    if path.startswith(data) and not path.endswith(".py") and "__pycache__" not in path:
        read.append(path)
    return real_open(file, *args, **kwargs)
builtins.open = io.open = spy
from benchmark.__main__ import main
from benchmark.data import DATASETS, SUITES
from benchmark.models import BACKBONES
from methods import METHODS
from benchmark.speed import SECTIONS
for registry in (SUITES, DATASETS, BACKBONES, METHODS, SECTIONS):
    registry.load()
import benchmark.report.leaderboard, benchmark.report.reproduce, benchmark.report.mce, benchmark.harness.run
assert not read, read
from benchmark.data.pascal import class_list
class_list("voc_classes")  # a first use does read: the spy sees it
assert read and read[0].endswith("voc_classes.txt"), read
print("ok", len(SUITES.names()), len(METHODS.names()))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("ok"), out.stderr[-2000:]


def test_the_reference_is_made_when_the_run_starts_for_the_methods_that_need_it(tmp_path, monkeypatch):
    from method_smoke import run_smoke

    seen = {}
    for name in ("ft", "l2-sp"):
        cls = METHODS.get(name)
        original = cls.setup

        def setup(self, model, ctx, original=original, name=name):
            seen[name] = (ctx.reference, {k: v.clone() for k, v in model.state_dict().items()})
            original(self, model, ctx)

        monkeypatch.setattr(cls, "setup", setup)
        run_smoke(name, tmp_path / name)
    assert seen["ft"][0] is None  # FT holds no extra copy
    reference, initial = seen["l2-sp"]
    assert not reference.training and not any(p.requires_grad for p in reference.parameters())
    assert all(torch.equal(reference.state_dict()[k], v) for k, v in initial.items())  # the weights before setup
    needing = {n for n in METHODS.names() if METHODS.get(n).needs_reference}
    assert needing == {"l2-sp", "tpgm", "fsr", "lipsum-ft"}
