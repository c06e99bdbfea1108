"""`benchmark pretrain`: regenerate the ``digitnet`` weights the ``digits`` suite ships (benchmark/models/digitnet.py).

Pretraining data: digits rendered (benchmark/data/glyphs.py) from the fonts of Debian's font packages in four
styles on pretraining textures. Held out of it, for the suite's OOD sets: the fonts matplotlib ships (DejaVu,
STIX, Computer Modern — so Debian's DejaVu and CMU copies are excluded too), the held-out textures, and every
handwritten digit. Deterministic for a given machine, font set and seed; another CPU or FreeType version
moves the float arithmetic and so the checksum, not the accuracy (the command prints both).
"""
from __future__ import annotations

import io
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.data import glyphs
from benchmark.errors import BenchmarkError
from benchmark.files import atomic_write_bytes
from benchmark.models import digitnet

FONT_ROOTS = ("/usr/share/fonts/truetype", "/usr/share/fonts/opentype")
HELD_OUT_FONTS = ("/dejavu/", "/cmu/")  # matplotlib ships DejaVu and Computer Modern: the suite tests on them
# The Debian packages the shipped weights were pretrained with (../shared/notes/environment.md lists them).
FONT_PACKAGES = ("fonts-adf-accanthis fonts-adf-baskervald fonts-adf-berenis fonts-adf-gillius fonts-adf-ikarius "
                 "fonts-adf-irianis fonts-adf-libris fonts-adf-mekanus fonts-adf-oldania fonts-adf-romande "
                 "fonts-adf-switzera fonts-adf-tribun fonts-adf-universalis fonts-adf-verana fonts-blankenburg "
                 "fonts-breip fonts-bwht fonts-comic-neue fonts-dancingscript fonts-dkg-handwriting fonts-engadget "
                 "fonts-femkeklaver fonts-freefont-ttf fonts-goudybookletter fonts-humor-sans fonts-isabella "
                 "fonts-kristi fonts-league-spartan fonts-leckerli-one fonts-liberation2 fonts-linuxlibertine "
                 "fonts-lobster fonts-lobstertwo fonts-ocr-a fonts-ocr-b fonts-oldstandard fonts-quattrocento "
                 "fonts-rufscript fonts-sjfonts fonts-texgyre fonts-tuffy fonts-urw-base35")  # fmt: skip
MIN_FONTS = 100  # fewer means the font packages are missing: the weights would not be the shipped ones' kind


@dataclass(frozen=True)
class Recipe:
    n_train: int = 20000
    n_val: int = 2000
    epochs: int = 6
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    seed: int = 0


def recipe(overrides: dict) -> Recipe:
    """The default recipe with `overrides`; unknown keys and non-positive sizes are one-line errors."""
    fields = asdict(Recipe())
    unknown = set(overrides) - set(fields)
    if unknown:
        raise BenchmarkError(f"unknown pretraining option(s) {sorted(unknown)}; valid: {', '.join(fields)}")
    for key, value in overrides.items():
        kind = type(fields[key])
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
            raise BenchmarkError(f"--set {key}={value!r}: expects a {'whole number' if kind is int else 'number'}")
        if value < (0 if key in ("seed", "weight_decay") else 1e-12):
            raise BenchmarkError(f"--set {key}={value!r}: must be {'>= 0' if key in ('seed', 'weight_decay') else '> 0'}")
    return Recipe(**{**fields, **{k: type(fields[k])(v) for k, v in overrides.items()}})


def pretraining_fonts(roots=FONT_ROOTS, minimum: int = MIN_FONTS) -> list[str]:
    fonts = glyphs.font_files([r for r in roots if Path(r).is_dir()], exclude=HELD_OUT_FONTS)
    if len(fonts) < minimum:
        raise BenchmarkError(f"found {len(fonts)} usable fonts under {', '.join(roots)}, need {minimum}; install them: "
                             f"apt-get install {FONT_PACKAGES}")  # fmt: skip
    return fonts


def as_tensor(images: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    return (x - 0.5) / 0.5  # digitnet's normalisation (mean = std = 0.5)


def train(fonts: list[str], recipe: Recipe, progress=print) -> tuple[dict, dict]:
    """(state dict, facts): the model pretrained on `recipe.n_train` renders, scored on `n_val` other renders."""
    started = time.time()
    x, y = glyphs.render(fonts, recipe.n_train, recipe.seed, glyphs.PRETRAINING_TEXTURES)
    x_val, y_val = glyphs.render(fonts, recipe.n_val, recipe.seed + 1, glyphs.PRETRAINING_TEXTURES)
    x, x_val, y, y_val = as_tensor(x), as_tensor(x_val), torch.from_numpy(y), torch.from_numpy(y_val)
    progress(f"rendered {len(x) + len(x_val)} digits from {len(fonts)} fonts in {time.time() - started:.0f} s")
    torch.manual_seed(recipe.seed)
    model = digitnet.digitnet()
    batches = -(-len(x) // recipe.batch_size)  # the last, partial batch too
    steps = recipe.epochs * batches
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, recipe.lr, total_steps=steps, pct_start=0.1)
    generator = torch.Generator().manual_seed(recipe.seed)
    for epoch in range(recipe.epochs):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        for i in range(batches):
            batch = order[i * recipe.batch_size : (i + 1) * recipe.batch_size]
            loss = F.cross_entropy(model(x[batch]), y[batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
        accuracy = evaluate(model, x_val, y_val)
        progress(f"epoch {epoch + 1}/{recipe.epochs}: loss {loss.item():.3f}, rendered val top-1 {100 * accuracy:.1f}%")
    facts = {"recipe": asdict(recipe), "fonts": len(fonts), "val_top1": accuracy, "seconds": round(time.time() - started)}
    return model.state_dict(), facts


@torch.no_grad()
def evaluate(model, x, y) -> float:
    model.eval()
    return sum((model(x[i : i + 512]).argmax(1) == y[i : i + 512]).sum().item() for i in range(0, len(x), 512)) / len(x)


def pretrain(out: Path, recipe: Recipe = Recipe(), fonts: list[str] | None = None, progress=print) -> str:
    """Pretrain and write the weights to `out` (never over an existing file); returns a report."""
    out = Path(out)
    if out.exists():
        raise BenchmarkError(f"{out} exists; pass another --out (nothing is overwritten)")
    state, facts = train(pretraining_fonts() if fonts is None else fonts, recipe, progress)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(out, buffer.getvalue())
    digest = digitnet.sha256(out)
    same = "identical to" if digest == digitnet.SHIPPED_SHA256 else "differs from"
    return (f"wrote {out} (sha256 {digest}; {same} the shipped weights' {digitnet.SHIPPED_SHA256[:12]}…); "
            f"rendered val top-1 {100 * facts['val_top1']:.1f}% after {facts['seconds']} s; "
            f"use it with --backbone digitnet:{out}")  # fmt: skip
