import torch

from benchmark.models import create_backbone
from benchmark.speed import SECTIONS
from benchmark.speed.methods import held_bytes, measure
from method_smoke import BACKBONE


def test_section_is_registered():
    SECTIONS.load()
    assert "methods" in SECTIONS


def test_quick_measure_on_a_tiny_model_reports_every_method_and_one_copy_at_most():
    torch.manual_seed(0)
    base = create_backbone(BACKBONE, ["a", "b"], 16, pretrained=False).model
    lines = measure(base, 16, 4, 2, quick=True, names=["ft", "lp", "lp-ft", "wise-ft", "l2-sp", "tpgm"])
    text = "\n".join(lines)
    for label in ("ft", "lp-ft", "wise-ft", "l2-sp", "tpgm", "tpgm@domainnet"):
        assert any(line.split()[0] == label and "x" in line.split()[1] for line in lines[1:]), text
    assert "lp               trains nothing" in text
    assert "wise-ft finalize" in text and "tpgm post-hoc" in text
    assert "OVER" not in text


def test_held_bytes_counts_each_storage_once_and_skips_the_model():
    a = torch.zeros(10)  # 40 bytes
    assert held_bytes({"x": a, "y": [a, a[:5]]}, skip=set()) == 40
    assert held_bytes({"x": a}, skip={a.untyped_storage().data_ptr()}) == 0
