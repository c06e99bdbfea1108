"""`benchmark bench corruptions`: the corruption engine against stock imagecorruptions, side by side.

Per core: every corruption at every severity on one PASCAL-sized photo (500x375), stock then fast, in
this process with OpenCV held to one thread, timed in CPU seconds of this process (what one core
spends; robust to other load on a shared machine); the outputs must be identical. Workers: a whole
corrupted set built through the cache with 1 and then 2 worker processes, in wall seconds (the only
measure of parallel speed-up, so it needs two otherwise idle cores to mean anything).
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmark import corruption_fast, corruptions
from benchmark.bench import SECTIONS, best_time
from benchmark.corruption_cache import CorruptionCache, limit_threads

PASCAL_SIZE = (500, 375)  # W x H: the most common PASCAL VOC image size
VOC_VAL_IMAGES = 1449  # PASCAL VOC 2012 segmentation val


def photo(size: tuple[int, int], index: int = 0) -> np.ndarray:
    """A real photo (scikit-image's bundled ones) at ``size``; content affects a few corruptions' cost."""
    import skimage.data

    source = (skimage.data.astronaut, skimage.data.chelsea, skimage.data.coffee)[index % 3]()
    return np.asarray(Image.fromarray(source).convert("RGB").resize(size, Image.BILINEAR))


def _pass(image, name, severities, fast):
    return [corruptions.corrupt(image, name, s, seed=s, fast=fast) for s in severities]


@SECTIONS.register("corruptions")
def bench_corruptions(quick: bool) -> list[str]:
    limit_threads()
    size = (250, 188) if quick else PASCAL_SIZE
    severities = (3,) if quick else corruptions.SEVERITIES
    repeats = 1 if quick else 2
    image = photo(size)
    lines = [f"per core, {size[0]}x{size[1]} photo, severities {severities}, best of {repeats} (CPU seconds):",
             f"  {'corruption':<18} {'stock':>8} {'fast':>8} {'ratio':>7}  identical"]  # fmt: skip
    total_stock = total_fast = 0.0
    for name in corruptions.CORRUPTIONS:
        same = all(np.array_equal(a, b) for a, b in zip(_pass(image, name, severities, False), _pass(image, name, severities, True)))
        t_stock = best_time(lambda: _pass(image, name, severities, False), repeats, time.process_time)
        t_fast = best_time(lambda: _pass(image, name, severities, True), repeats, time.process_time)
        total_stock, total_fast = total_stock + t_stock, total_fast + t_fast
        tag = "" if name in corruption_fast.FAST else "  (stock code)"
        lines.append(f"  {name:<18} {t_stock:8.3f} {t_fast:8.3f} {t_stock / t_fast:6.1f}x  {'yes' if same else 'NO'}{tag}")
    lines.append(f"  {'full pass':<18} {total_stock:8.3f} {total_fast:8.3f} {total_stock / total_fast:6.1f}x  (target >= 6x)")

    n_images = 2 if quick else 4
    pairs = [(c, s) for c in corruptions.CORRUPTIONS for s in severities]
    clean = np.stack([photo(size, i) for i in range(n_images)])
    walls = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            cache = CorruptionCache(Path(tmp) / f"w{workers}", clean, shard_size=1)
            t = time.perf_counter()
            cache.build(pairs, workers=workers, progress=False)
            walls[workers] = time.perf_counter() - t
    lines.append(f"cache build, {n_images} images x {len(pairs)} sets, fast path, wall: 1 worker {walls[1]:.2f}s, "
                 f"2 workers {walls[2]:.2f}s -> {walls[1] / walls[2]:.2f}x (target >= 1.8x)")  # fmt: skip
    if not quick:
        per_image_2 = walls[2] / n_images
        stock_2 = total_stock * VOC_VAL_IMAGES / 2  # stock, ideally split over 2 cores
        lines.append(f"PASCAL VOC val ({VOC_VAL_IMAGES} images x {len(pairs)}), 2 workers: ~{per_image_2 * VOC_VAL_IMAGES / 60:.0f} min "
                     f"extrapolated (stock on 2 cores, ideal split: ~{stock_2 / 3600:.1f} h)")  # fmt: skip
    return lines
