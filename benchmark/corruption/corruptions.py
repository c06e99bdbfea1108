"""The corruption engine: imagecorruptions (Hendrycks & Dietterich 2019) bridged to today's stack.

Seeded semantics: ``corrupt(img, name, severity, seed)`` equals ``np.random.seed(seed);
imagecorruptions.corrupt(img, corruption_name=name, severity=severity)`` on the reference stack
(numpy 1.x, scikit-image 0.19). ``impulse_noise`` draws from scikit-image's own generator and ignores
``np.random.seed``; we seed that generator explicitly with the same ``seed``.

imagecorruptions 1.1.2 does not import on today's stack. The bridge, scoped to that module only:
- it imports ``pkg_resources`` (gone with new setuptools) for ``resource_filename``: a shim is
  registered just for that import;
- ``np.float_`` (removed in NumPy 2): the module sees a numpy proxy that still has it;
- ``gaussian(..., multichannel=True)`` (removed from scikit-image): translated to ``channel_axis=-1``;
- ``scipy.ndimage.interpolation`` (deprecated alias): served from ``scipy.ndimage`` if absent;
- float64 ``np.exp`` differs in the last bit across NumPy versions and CPUs: the motion-blur kernel
  uses libm's exp, i.e. the reference is NumPy 1.x as it runs on a CPU without AVX512F.

Speed: corruptions whose stock code is slow run through benchmark/corruption/fast.py (``fast=True``,
the default), which gives the same uint8 output for every seed; ``fast=False`` runs the stock code.
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import io
import math
import os
import sys
import types
from pathlib import Path

import numpy as np
from PIL import Image

from benchmark.corruption import fast as corruption_fast
from benchmark.errors import BenchmarkError
from benchmark.files import atomic_write_bytes

CORRUPTIONS = (
    "gaussian_noise", "shot_noise", "impulse_noise",
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness",
    "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)  # fmt: skip
SEVERITIES = (1, 2, 3, 4, 5)


class _ReferenceNumpy(types.ModuleType):
    """numpy as imagecorruptions expects it: NumPy 2 plus the removed ``float_`` alias, and a
    platform-independent float64 ``exp`` (used only for the motion-blur kernel)."""

    float_ = np.float64

    @staticmethod
    def exp(x):
        # np.exp's last bit depends on the NumPy version and CPU (NumPy 1.26 uses its own AVX512F code
        # where the CPU has it, libm elsewhere; NumPy 2 a third variant), which moves motion_blur pixels
        # by 1. libm's exp is what NumPy 1.x computes on CPUs without AVX512F.
        return np.vectorize(math.exp, otypes=[np.float64])(x)

    def __getattr__(self, name):
        return getattr(np, name)


def _pkg_resources_shim() -> types.ModuleType:
    shim = types.ModuleType("pkg_resources")
    # pkg_resources resolves a module's resource next to that module's file.
    shim.resource_filename = lambda module, path: os.path.join(os.path.dirname(sys.modules[module].__file__), path)
    return shim


@functools.cache
def _bridged():
    """Import imagecorruptions once with the incompatibilities bridged; returns the module."""
    injected = []
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        sys.modules["pkg_resources"] = _pkg_resources_shim()
        injected.append("pkg_resources")
    try:
        import scipy.ndimage.interpolation  # noqa: F401
    except ImportError:
        import scipy.ndimage

        sys.modules["scipy.ndimage.interpolation"] = scipy.ndimage
        injected.append("scipy.ndimage.interpolation")
    try:
        ic = importlib.import_module("imagecorruptions")
        impl = importlib.import_module("imagecorruptions.corruptions")
    finally:
        for name in injected:
            sys.modules.pop(name, None)
    impl.np = _ReferenceNumpy("numpy")
    stock_gaussian = impl.gaussian

    def gaussian(image, *args, multichannel=None, **kwargs):
        if multichannel:
            kwargs["channel_axis"] = -1
        return stock_gaussian(image, *args, **kwargs)

    impl.gaussian = gaussian
    return ic, impl


@contextlib.contextmanager
def _seeded_skimage_noise(impl, seed: int):
    """impulse_noise calls skimage.util.random_noise, whose generator ignores np.random.seed."""
    sk_util = impl.sk.util
    stock = sk_util.random_noise
    sk_util.random_noise = functools.partial(stock, rng=seed)
    try:
        yield
    finally:
        sk_util.random_noise = stock


def check(name: str, severity: int) -> None:
    if name not in CORRUPTIONS:
        raise BenchmarkError(f"unknown corruption {name!r}; valid: {', '.join(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise BenchmarkError(f"severity must be one of 1..5, got {severity!r}")


def corrupt(image: np.ndarray, name: str, severity: int, seed: int, fast: bool = True) -> np.ndarray:
    """Corrupt one HxWx3 uint8 image (at least 32x32, as imagecorruptions requires); returns uint8 of the same shape."""
    check(name, severity)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise BenchmarkError(f"expected an HxWx3 uint8 image, got {image.dtype} {image.shape}")
    if min(image.shape[:2]) < 32:
        raise BenchmarkError(f"imagecorruptions needs images of at least 32x32 pixels, got {image.shape[1]}x{image.shape[0]}")
    ic, impl = _bridged()
    np.random.seed(seed)
    if fast and name in corruption_fast.FAST:
        # What ic.corrupt does for an HxWx3 uint8 array, with the fast function in place of the stock one.
        return np.uint8(corruption_fast.FAST[name](Image.fromarray(image), severity, impl))
    with _seeded_skimage_noise(impl, seed):
        out = ic.corrupt(image, corruption_name=name, severity=severity)
    return np.asarray(out, dtype=np.uint8)


def corrupt_file(src: Path, name: str, severity: int, seed: int, out: Path, force: bool = False) -> np.ndarray:
    """`benchmark corrupt`: PNG (or any image PIL reads) in, RGB PNG of the same size out."""
    check(name, severity)
    out = Path(out)
    if out.exists() and not force:
        raise BenchmarkError(f"{out} exists; pass --force to overwrite it")
    try:
        with Image.open(src) as im:
            image = np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as e:
        raise BenchmarkError(f"cannot read image {src}: {e}") from None
    result = corrupt(image, name, severity, seed)
    buf = io.BytesIO()
    Image.fromarray(result).save(buf, format="PNG")
    atomic_write_bytes(out, buf.getvalue())
    return result
