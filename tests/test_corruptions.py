"""The corruption engine: identity with the reference stack (golden file), fast path == stock, CLI errors."""
import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmark.corruption import corruptions, fast as corruption_fast
from benchmark.__main__ import main

GOLDEN = np.load(Path(__file__).parent / "golden" / "reference_outputs.npz")  # see golden/make_golden.py
SIZES = ("32x32", "48x40")


@pytest.mark.parametrize("name", corruptions.CORRUPTIONS)
def test_matches_reference_stack_bit_for_bit(name):
    """Every severity x 3 seeds x 2 sizes equals imagecorruptions on numpy 1.26 / scikit-image 0.19."""
    checked = 0
    for key in GOLDEN.files:
        kind, size, cname, severity, seed = (key.split("/") + [None] * 4)[:5]
        if kind != "sha256" or cname != name:
            continue
        out = corruptions.corrupt(GOLDEN[f"input/{size}"], name, int(severity), int(seed))
        ref = GOLDEN.get(f"output/{size}/{name}/{severity}/{seed}")
        if ref is not None:
            assert out.shape == ref.shape and np.array_equal(out, ref), f"{size} s{severity} seed {seed}: {(out != ref).sum()} values differ"
        assert hashlib.sha256(out.tobytes()).digest() == GOLDEN[key].tobytes(), f"{size} s{severity} seed {seed} differs"
        checked += 1
    assert checked == 2 * 5 * 3


def test_one_randint_call_draws_the_stock_stream():
    """The glass_blur fast path relies on it: n calls of randint(size=(2,)) == one call of size (n, 2)."""
    for delta in (1, 2, 3, 4):
        np.random.seed(delta)
        loop = np.array([np.random.randint(-delta, delta, size=(2,)) for _ in range(3000)])
        np.random.seed(delta)
        assert np.array_equal(loop, np.random.randint(-delta, delta, size=(3000, 2)))


@pytest.mark.parametrize("name", sorted(corruption_fast.FAST))
def test_fast_path_equals_stock_on_random_images(name):
    rng = np.random.default_rng(0)
    for shape in ((32, 32, 3), (45, 33, 3), (34, 61, 3)):
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        for severity in corruptions.SEVERITIES:
            seed = int(rng.integers(2**31))
            fast = corruptions.corrupt(image, name, severity, seed)
            stock = corruptions.corrupt(image, name, severity, seed, fast=False)
            assert np.array_equal(fast, stock), f"{shape} s{severity} seed {seed}"


def test_glass_shuffle_copies_rather_than_swaps():
    """Hand-worked case of the stock loop: x[h, w] takes x[h', w'] as it is at that moment."""
    # 5x6 image, delta 2: only (3, 4) then (3, 3) are visited (flat 22, then 21).
    # (3,4) <- (3,3) gives it pixel 21; then (3,3) <- (3,4), already rewritten: pixel 21 again.
    # A true swap would have swapped twice and restored the identity.
    src = corruption_fast.glass_shuffle_sources(5, 6, 2, np.array([[-1, 0], [1, 0]]))
    expected = list(range(30))
    expected[22] = 21
    assert src.tolist() == expected
    # (3,4) <- (2,4) = pixel 16 (not yet visited: the pass's input); (3,3) <- (4,4) never visited: 28.
    src = corruption_fast.glass_shuffle_sources(5, 6, 2, np.array([[0, -1], [1, 1]]))
    expected[21:23] = [28, 16]
    assert src.tolist() == expected


def test_seed_changes_output_and_repeats():
    image = GOLDEN["input/32x32"]
    a, b = (corruptions.corrupt(image, "shot_noise", 3, s) for s in (1, 2))
    assert not np.array_equal(a, b)
    assert np.array_equal(a, corruptions.corrupt(image, "shot_noise", 3, 1))


def test_cli_round_trip_and_list(tmp_path, capsys):
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    Image.fromarray(GOLDEN["input/48x40"]).save(src)
    assert main(["corrupt", str(src), "--corruption", "fog", "--severity", "2", "--seed", "7", "-o", str(out)]) == 0
    written = np.asarray(Image.open(out))
    assert written.shape == (40, 48, 3) and written.dtype == np.uint8
    assert np.array_equal(written, corruptions.corrupt(GOLDEN["input/48x40"], "fog", 2, 7))
    assert main(["corrupt", "--list"]) == 0
    assert capsys.readouterr().out.split()[-15:] == list(corruptions.CORRUPTIONS)


@pytest.mark.parametrize("args, message", [
    (["--corruption", "fogg"], "unknown corruption"),
    (["--corruption", "fog", "--severity", "6"], "severity"),
    (["--corruption", "fog", "--image-override", "missing.png"], "cannot read image"),
    (["--corruption", "fog", "--existing"], "exists"),
])  # fmt: skip
def test_cli_errors_exit_2(tmp_path, capsys, args, message):
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    Image.fromarray(GOLDEN["input/32x32"]).save(src)
    if "--image-override" in args:
        src = tmp_path / args.pop()
        args.remove("--image-override")
    if "--existing" in args:
        args.remove("--existing")
        out.write_bytes(b"keep me")
    assert main(["corrupt", str(src), *args, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    if message == "exists":
        assert out.read_bytes() == b"keep me"
