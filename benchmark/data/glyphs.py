"""Digits rendered from font files, in four styles, for the ``digits`` suite and its backbone's pretraining.

A rendered digit is a font's glyph (Pillow + FreeType), scaled, rotated and shifted at random, drawn in one
of four styles: light on dark, dark on light, flat colours, or on a photo/texture background (scikit-image's
bundled images). Half the renders are reduced to 8x8 and blown up again, the way scikit-learn's handwritten
digits reach the model: pretraining then knows that *kind* of image without seeing a single handwritten one.

Everything is drawn from one ``numpy`` generator, so a (fonts, textures, seed) triple gives the same images on
every run; FreeType versions can move a glyph's pixels slightly across machines.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from benchmark.errors import BenchmarkError

STYLES = ("light-on-dark", "dark-on-light", "colour", "texture")
GLYPH_PX = 64  # glyphs are cached at this height, then scaled down: one rasterisation per (font, digit)
# scikit-image's bundled images, split once: pretraining draws on the first, the suite's OOD sets on the second.
PRETRAINING_TEXTURES = ("brick", "grass", "gravel", "camera", "coffee", "chelsea", "rocket", "moon", "coins",
                        "clock", "cell", "colorwheel")  # fmt: skip
HELD_OUT_TEXTURES = ("astronaut", "cat", "hubble_deep_field", "immunohistochemistry", "retina")
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 luminance weights of R, G, B


@dataclass(frozen=True)
class RenderOptions:
    size: int = 32
    styles: tuple[str, ...] = STYLES
    low_res: float = 0.5  # share reduced to 8x8 and enlarged again (scikit-learn digits' look)
    blur: float = 0.3
    noise: float = 0.3
    augment: bool = True  # random thickness, scale, rotation, shift; False: centred, upright, one scale


@lru_cache(maxsize=None)
def glyph(font: str, digit: int) -> np.ndarray:
    """The digit's ink in `font`, cropped to its bounding box, GLYPH_PX high (float 0..1)."""
    try:
        face = ImageFont.truetype(font, GLYPH_PX * 2)
    except OSError as e:
        raise BenchmarkError(f"cannot read font {font}: {e}") from None
    canvas = Image.new("L", (GLYPH_PX * 4, GLYPH_PX * 4))
    ImageDraw.Draw(canvas).text((GLYPH_PX, GLYPH_PX // 2), str(digit), fill=255, font=face)
    box = canvas.getbbox()
    if box is None:
        return np.zeros((0, 0), np.float32)
    ink = canvas.crop(box)
    width = max(1, round(ink.width * GLYPH_PX / ink.height))
    return np.asarray(ink.resize((width, GLYPH_PX), Image.BILINEAR), np.float32) / 255


def usable(font: str) -> bool:
    """True when the font draws all ten digits, each distinct (symbol fonts draw boxes or nothing)."""
    try:
        glyphs = [glyph(font, d) for d in range(10)]
    except BenchmarkError:
        return False
    if any(g.size == 0 or g.mean() < 0.02 for g in glyphs):
        return False
    small = [np.asarray(Image.fromarray((g * 255).astype(np.uint8)).resize((16, 16), Image.BILINEAR), np.float32) / 255
             for g in glyphs]  # fmt: skip
    return all(np.abs(small[a] - small[b]).mean() > 0.04 for a in range(10) for b in range(a + 1, 10))


def font_files(roots, exclude: tuple[str, ...] = ()) -> list[str]:
    """Usable TrueType/OpenType files under `roots`, sorted; paths containing any of `exclude` are skipped."""
    found = sorted({str(p) for root in roots for p in Path(root).rglob("*") if p.suffix.lower() in (".ttf", ".otf")})
    return [f for f in found if not any(x in f for x in exclude) and usable(f)]


def matplotlib_fonts() -> list[str]:
    """The fonts matplotlib ships (DejaVu, STIX, Computer Modern): present wherever the package is."""
    import matplotlib

    return font_files([Path(matplotlib.get_data_path()) / "fonts" / "ttf"])


@lru_cache(maxsize=None)
def texture(name: str) -> np.ndarray:
    """A scikit-image bundled image as float RGB 0..1."""
    import skimage.data

    image = np.asarray(getattr(skimage.data, name)(), np.float32)
    image = image / 255 if image.max() > 1 else image
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return image[..., :3]


def background(rng: np.random.Generator, textures: tuple[str, ...], size: int) -> np.ndarray:
    image = texture(textures[rng.integers(len(textures))])
    crop = int(rng.integers(size, max(size + 1, min(image.shape[:2]) // 2)))
    top, left = rng.integers(image.shape[0] - crop + 1), rng.integers(image.shape[1] - crop + 1)
    patch = image[top : top + crop, left : left + crop]
    return np.asarray(Image.fromarray((patch * 255).astype(np.uint8)).resize((size, size), Image.BILINEAR), np.float32) / 255


def contrasting_colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two RGB colours whose luminance differs by at least 0.3, so the digit stays legible."""
    while True:
        ink, paper = rng.random(3), rng.random(3)
        if abs(ink @ LUMA - paper @ LUMA) >= 0.3:
            return ink.astype(np.float32), paper.astype(np.float32)


def paint(mask: np.ndarray, style: str, rng: np.random.Generator, textures: tuple[str, ...]) -> np.ndarray:
    """Compose an ink mask (HxW, 0..1) into an RGB image (0..1) in `style`."""
    size = mask.shape[0]
    if style == "light-on-dark":
        ink, paper = np.full(3, rng.uniform(0.7, 1.0)), np.full(3, rng.uniform(0.0, 0.25))
    elif style == "dark-on-light":
        ink, paper = np.full(3, rng.uniform(0.0, 0.3)), np.full(3, rng.uniform(0.75, 1.0))
    elif style == "colour":
        ink, paper = contrasting_colours(rng)
    elif style == "texture":
        paper = background(rng, textures, size)
        # ink as far from the background's mean brightness as possible, so the digit stays legible
        ink = np.full(3, 0.0 if paper.mean() > 0.5 else 1.0) if rng.random() < 0.7 else contrasting_colours(rng)[0]
    else:
        raise BenchmarkError(f"unknown style {style!r}; valid: {', '.join(STYLES)}")
    alpha = mask[..., None]
    return (alpha * np.asarray(ink, np.float32) + (1 - alpha) * paper).astype(np.float32)


def place(ink: np.ndarray, rng: np.random.Generator, size: int, augment: bool) -> np.ndarray:
    """Scale, rotate and shift a glyph onto a size x size canvas (float mask)."""
    image = Image.fromarray((ink * 255).astype(np.uint8))
    if augment and rng.random() < 0.4:  # stroke weight: thicker or thinner pens
        image = image.filter(ImageFilter.MaxFilter(5) if rng.random() < 0.5 else ImageFilter.MinFilter(3))
    height = size * (rng.uniform(0.55, 0.85) if augment else 0.7)
    width = min(size * 0.9, height * image.width / image.height)
    image = image.resize((max(1, round(width)), max(1, round(height))), Image.BILINEAR)
    if augment:
        image = image.rotate(rng.uniform(-12, 12), Image.BILINEAR, expand=True)
    canvas = Image.new("L", (size, size))
    shift = rng.uniform(-0.08, 0.08, 2) * size if augment else np.zeros(2)
    canvas.paste(image, (round((size - image.width) / 2 + shift[0]), round((size - image.height) / 2 + shift[1])))
    return np.asarray(canvas, np.float32) / 255


def degrade(image: np.ndarray, rng: np.random.Generator, opts: RenderOptions) -> np.ndarray:
    pil = Image.fromarray((image * 255).round().astype(np.uint8))
    if rng.random() < opts.low_res:
        pil = pil.resize((8, 8), Image.BOX).resize((opts.size, opts.size), Image.BILINEAR)
    if rng.random() < opts.blur:
        pil = pil.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    out = np.asarray(pil, np.float32) / 255
    if rng.random() < opts.noise:
        out = out + rng.normal(0, rng.uniform(0.01, 0.06), out.shape).astype(np.float32)
    return out


def render(fonts: list[str], n: int, seed: int, textures: tuple[str, ...], opts: RenderOptions = RenderOptions(),
           progress=None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """n digits (balanced over the ten classes), each in a random font and style: (uint8 NxSxSx3, labels)."""
    if not fonts:
        raise BenchmarkError("no usable font to render digits with")
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    images = np.empty((n, opts.size, opts.size, 3), np.uint8)
    for i in range(n):
        font = fonts[rng.integers(len(fonts))]
        style = opts.styles[rng.integers(len(opts.styles))]
        mask = place(glyph(font, int(labels[i])), rng, opts.size, opts.augment)
        image = degrade(paint(mask, style, rng, textures), rng, opts)
        images[i] = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
        if progress:
            progress(1)
    return images, labels


def restyle(images: np.ndarray, style: str, seed: int, textures: tuple[str, ...] = HELD_OUT_TEXTURES) -> np.ndarray:
    """Grey light-on-dark images (uint8 NxSxSx3) redrawn in another style, their brightness read as ink."""
    rng = np.random.default_rng(seed)
    out = np.empty_like(images)
    for i, image in enumerate(images):
        grey = image.astype(np.float32).mean(2) / 255
        ink = (grey - grey.min()) / max(grey.max() - grey.min(), 1e-6)
        out[i] = (np.clip(paint(ink, style, rng, textures), 0, 1) * 255).round().astype(np.uint8)
    return out
