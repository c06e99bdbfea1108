"""The resumable corrupted-set cache: each image once, interruption and damaged files redone, workers agree."""
import json

import numpy as np
import pytest
from PIL import Image

from benchmark.corruption import corruptions
from benchmark.corruption.cache import CorruptionCache, FileImages, image_seed
from benchmark.errors import BenchmarkError

PAIRS = [("contrast", 1), ("pixelate", 2)]
CALLS = []


def counting_seed(corruption, severity, index):
    CALLS.append((corruption, severity, index))
    return image_seed(corruption, severity, index)


def failing_seed(corruption, severity, index):
    if (corruption, index) == ("pixelate", 4):
        raise KeyboardInterrupt  # stands in for Ctrl-C / a kill mid-build
    return image_seed(corruption, severity, index)


@pytest.fixture
def clean():
    return np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)


def expected(clean, c, s):
    return np.stack([corruptions.corrupt(im, c, s, image_seed(c, s, i)) for i, im in enumerate(clean)])


def test_builds_each_image_once_and_reuses(tmp_path, clean):
    CALLS.clear()
    cache = CorruptionCache(tmp_path, clean, shard_size=4, seed_fn=counting_seed)
    got = cache.load(PAIRS, workers=1, progress=False)
    assert sorted(CALLS) == sorted((c, s, i) for c, s in PAIRS for i in range(6))
    for c, s in PAIRS:
        assert np.array_equal(got[c, s], expected(clean, c, s))
    CALLS.clear()
    cache.load(PAIRS, workers=1, progress=False)
    assert CALLS == []


def test_resumes_after_interruption_redoing_only_what_is_missing(tmp_path, clean):
    cache = CorruptionCache(tmp_path, clean, shard_size=2, seed_fn=failing_seed)
    with pytest.raises(KeyboardInterrupt):
        cache.build(PAIRS, workers=1, progress=False)
    done = set(json.loads((tmp_path / "manifest.json").read_text()))
    assert len(done) == 5  # 3 contrast shards + pixelate images 0-3
    CALLS.clear()
    cache = CorruptionCache(tmp_path, clean, shard_size=2, seed_fn=counting_seed)
    got = cache.load(PAIRS, workers=1, progress=False)
    assert CALLS == [("pixelate", 2, 4), ("pixelate", 2, 5)]
    assert np.array_equal(got["pixelate", 2], expected(clean, "pixelate", 2))


def test_partial_damaged_and_unrecorded_files_are_redone(tmp_path, clean):
    cache = CorruptionCache(tmp_path, clean, shard_size=2)
    cache.build(PAIRS, workers=1, progress=False)
    key_partial, key_flipped, key_unrecorded = (k for k, _, _ in cache.shards("contrast", 1))
    partial = tmp_path / f"{key_partial}.npz"
    partial.write_bytes(partial.read_bytes()[:100])  # killed mid-write without the atomic rename
    flipped = tmp_path / f"{key_flipped}.npz"
    data = bytearray(flipped.read_bytes())
    data[-200] ^= 1  # one bit of rot
    flipped.write_bytes(bytes(data))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    del manifest[key_unrecorded]  # killed after the shard was written, before the manifest was
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BenchmarkError, match="damaged"):
        cache.read("contrast", 1)
    assert [k for *_, k, _, _ in cache.missing(PAIRS)] == [key_partial, key_flipped, key_unrecorded]
    got = cache.load(PAIRS, workers=1, progress=False)
    assert cache.missing(PAIRS) == []
    assert np.array_equal(got["contrast", 1], expected(clean, "contrast", 1))


def test_two_workers_and_images_of_different_sizes(tmp_path):
    rng = np.random.default_rng(1)
    paths = []
    for i, (h, w) in enumerate([(32, 40), (48, 33), (35, 35)]):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(paths[-1])
    images = FileImages(paths)
    one = CorruptionCache(tmp_path / "w1", images, shard_size=2).load(PAIRS, workers=1, progress=False)
    two = CorruptionCache(tmp_path / "w2", images, shard_size=2).load(PAIRS, workers=2, progress=False)
    for pair in PAIRS:
        assert [im.shape for im in one[pair]] == [(32, 40, 3), (48, 33, 3), (35, 35, 3)]
        assert all(np.array_equal(a, b) for a, b in zip(one[pair], two[pair]))
        assert all(np.array_equal(a, corruptions.corrupt(images[i], *pair, image_seed(*pair, i))) for i, a in enumerate(one[pair]))
