"""`benchmark bench data --quick` end to end on its tiny fixture: every ratio line, no timing asserted."""
import re

import torch

from benchmark.__main__ import main
from benchmark.speed import SECTIONS
from benchmark.speed.data import IMAGENET_SIZES, imagenet_fixture


def test_section_is_registered():
    SECTIONS.load()
    assert "data" in SECTIONS


def test_fixture_is_imagenet_shaped_jpegs(tmp_path):
    from PIL import Image

    samples = imagenet_fixture(tmp_path, 9, scale=0.1)
    assert len(samples) == 9 and {label for _, label in samples} == set(range(7))
    with Image.open(samples[0][0]) as image:
        assert image.format == "JPEG" and image.mode == "RGB"
        assert image.size in {(round(w * 0.1), round(h * 0.1)) for w, h in IMAGENET_SIZES}


def test_quick_run_prints_its_ratio_lines(capsys):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared machine: torch's threads would wait on each other's cores
    try:
        assert main(["bench", "data", "--quick"]) == 0
    finally:
        torch.set_num_threads(threads)
    text = capsys.readouterr().out
    for pattern in (r"loader, 0 workers: +[\d.]+ img/s", r"loader, 2 workers: +[\d.]+ img/s",
                    r"2 workers / 1 worker: [\d.]+x \(target >= 1.7x", r"delivers [\d.]+x that",
                    r"= [\d.]+x from memory \(target >= 0.9x", r"-> [\d.]+x \(target >= 0.9x"):  # fmt: skip
        assert re.search(pattern, text), (pattern, text)
