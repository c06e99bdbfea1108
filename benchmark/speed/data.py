"""`benchmark bench data`: the input pipeline against the model it feeds, measured side by side.

- Loader: images/s of whole passes over an ImageNet-shaped fixture (JPEGs at ImageNet's common sizes, cut
  from scikit-image's bundled photos, quality 90), decoded and put through timm's ImageNet training
  transform (random resized crop, flip, colour jitter) at 224 px into batches, with 0, 1 and 2 worker
  processes; steady state (persistent workers, after a warm-up pass), wall time. 2 workers / 1 worker is the
  parallel speed-up, so it needs two otherwise idle cores to mean anything.
- Model: Lite0's training images/s (forward, backward, SGD step; random init, channels_last as runs use it)
  on batches from that pipeline held in memory, then fed by the loader with the --workers default: within
  0.9x of the in-memory rate, the loader keeps the model fed (on this machine's cores, which both share).
- Evaluation: benchmark.engine.evaluate's loop (loader, autocast, argmax, counting) against the bare
  forward pass on the same tensors.
"""
from __future__ import annotations

import itertools
import math
import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import TensorDataset

from benchmark.data.base import EvalSet
from benchmark.data.folders import ImageListDataset
from benchmark.engine import evaluate, loader
from benchmark.engine.loaders import default_workers
from benchmark.models import create_backbone
from benchmark.speed import SECTIONS, best_time

# ImageNet's most common image sizes (W x H), and the colour photos scikit-image ships (one class each).
IMAGENET_SIZES = ((500, 375), (500, 333), (375, 500), (500, 500), (500, 400), (333, 500), (400, 300), (640, 480))
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")
FED = 0.9  # training fed by the loader, as a fraction of training from memory
EVAL_TARGET = 0.9  # evaluation loop / bare forward
SPEEDUP_TARGET = 1.7  # 2 workers / 1 worker


def imagenet_fixture(folder: Path, n: int, scale: float = 1.0) -> list[tuple[str, int]]:
    """n JPEGs in a folder per photo, each a seeded crop of it at one of ImageNet's common sizes (times
    `scale`); returns their (path, label) samples."""
    import skimage.data

    rng = np.random.default_rng(0)
    photos = [Image.fromarray(getattr(skimage.data, name)()).convert("RGB") for name in PHOTOS]
    samples = []
    for i in range(n):
        label = i % len(photos)
        photo = photos[label]
        w, h = (max(8, round(s * scale)) for s in IMAGENET_SIZES[rng.integers(len(IMAGENET_SIZES))])
        # The largest crop of the target's shape, shrunk at random: photos repeat, their crops differ.
        crop_w = min(photo.width, photo.height * w / h) * rng.uniform(0.6, 1.0)
        crop_h = crop_w * h / w
        x0, y0 = rng.uniform(0, photo.width - crop_w), rng.uniform(0, photo.height - crop_h)
        image = photo.resize((w, h), Image.BILINEAR, box=(x0, y0, x0 + crop_w, y0 + crop_h))
        path = folder / PHOTOS[label] / f"{i:05d}.JPEG"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, quality=90)
        samples.append((str(path), label))
    return samples


def train_transform(size: int):
    from timm.data import create_transform

    return create_transform(input_size=(3, size, size), is_training=True, interpolation="bicubic")


def side_by_side(jobs: dict, repeats: int) -> dict:
    """Images/s of each job (a callable returning how many images it handled): one warm-up call each (it
    starts workers, reads files once), then the best of `repeats` calls, taken in turns so that a change in
    the machine's load hits every job alike."""
    images = {name: job() for name, job in jobs.items()}
    best = dict.fromkeys(jobs, math.inf)
    for _ in range(repeats):
        for name, job in jobs.items():
            best[name] = min(best[name], best_time(job, 1))
    return {name: images[name] / best[name] for name in jobs}


def drain(batches) -> Callable[[], int]:
    """A whole pass over a loader, as a job."""
    return lambda: sum(len(y) for _, y in batches)


def trainer(model, batches: Callable) -> Callable[[], int]:
    """A job: one SGD step of `model` on each batch `batches()` gives."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def train() -> int:
        model.train()
        images = 0
        for x, y in batches():
            loss = F.cross_entropy(model(x.contiguous(memory_format=torch.channels_last)), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            images += len(y)
        return images

    return train


@torch.no_grad()
def bare_forward(model, tensors: torch.Tensor, batch_size: int) -> int:
    model.eval()
    for x in tensors.split(batch_size):
        model(x).argmax(dim=1)
    return len(tensors)


def shuffled(dataset, batch_size: int, workers: int, persistent: bool = True):
    return loader(dataset, batch_size, shuffle=True, generator=torch.Generator().manual_seed(0), workers=workers,
                  persistent=persistent)  # fmt: skip


def plural(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def measure(n_images: int, scale: float, size: int, batch_size: int, steps: int, repeats: int) -> list[str]:
    workers, threads = default_workers(), torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="oodbench-bench-data-") as tmp:
        dataset = ImageListDataset(imagenet_fixture(Path(tmp), n_images, scale), train_transform(size))
        lines = [f"ImageNet-shaped fixture: {n_images} JPEGs, {len(IMAGENET_SIZES)} common ImageNet sizes x {scale:g}, "
                 f"timm's train transform at {size} px, batches of {batch_size}; {os.cpu_count()} CPUs, "
                 f"{plural(threads, 'torch thread')}; wall time, best of {repeats} after a warm-up, taken in turns"]  # fmt: skip
        counts = sorted({0, 1, 2, workers})
        rates = side_by_side({w: drain(shuffled(dataset, batch_size, w)) for w in counts}, repeats)
        lines += [f"  loader, {plural(w, 'worker')}: {rates[w]:8.1f} img/s" for w in counts]
        speedup = rates[2] / rates[1]
        lines.append(f"  2 workers / 1 worker: {speedup:.2f}x (target >= {SPEEDUP_TARGET}x: "
                     f"{'ok' if speedup >= SPEEDUP_TARGET else 'MISSED'}; needs 2 idle cores)")  # fmt: skip

        model = create_backbone("lite0", list(PHOTOS), size, pretrained=False).model.to(memory_format=torch.channels_last)
        held = list(itertools.islice(shuffled(dataset, batch_size, 2, persistent=False), steps))
        fed = shuffled(dataset, batch_size, workers)
        train = side_by_side({"memory": trainer(model, lambda: held),
                              "loader": trainer(model, lambda: itertools.islice(fed, steps))}, repeats)  # fmt: skip
        ahead, kept = rates[workers] / train["memory"], train["loader"] / train["memory"]
        lines.append(f"  lite0 training on these batches from memory: {train['memory']:.1f} img/s; the loader alone with "
                     f"{plural(workers, 'worker')} (the --workers default here) delivers {ahead:.1f}x that "
                     f"({'enough' if ahead >= 1 else 'TOO SLOW'})")  # fmt: skip
        lines.append(f"  lite0 training fed by that loader: {train['loader']:.1f} img/s = {kept:.2f}x from memory (target >= "
                     f"{FED}x: {'fed' if kept >= FED else 'MISSED'}; below it with a fast enough loader, its workers and "
                     f"torch's {plural(threads, 'thread')} contend for the cores)")  # fmt: skip

        tensors = torch.cat([x for x, _ in held]).contiguous(memory_format=torch.channels_last)
        sets = [EvalSet("bench", "id", TensorDataset(tensors, torch.cat([y for _, y in held])))]
        cpu = torch.device("cpu")
        scored = side_by_side({"loop": lambda: evaluate(model, sets, cpu, batch_size, progress=False)[0]["n"],
                               "bare": lambda: bare_forward(model, tensors, batch_size)}, repeats)  # fmt: skip
        ratio = scored["loop"] / scored["bare"]
        lines.append(f"  evaluation loop: {scored['loop']:.1f} img/s, bare forward on the same tensors: {scored['bare']:.1f} "
                     f"img/s -> {ratio:.2f}x (target >= {EVAL_TARGET}x: {'ok' if ratio >= EVAL_TARGET else 'MISSED'})")  # fmt: skip
        return lines


@SECTIONS.register("data")
def data_section(quick: bool) -> list[str]:
    if quick:
        return measure(n_images=16, scale=0.25, size=64, batch_size=8, steps=2, repeats=1)
    return measure(n_images=256, scale=1.0, size=224, batch_size=32, steps=2, repeats=2)
