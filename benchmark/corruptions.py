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
- ``scipy.ndimage.interpolation`` (deprecated alias): served from ``scipy.ndimage`` if absent.
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import os
import sys
import types

import numpy as np

from benchmark.errors import BenchmarkError

CORRUPTIONS = (
    "gaussian_noise", "shot_noise", "impulse_noise",
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness",
    "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)  # fmt: skip
SEVERITIES = (1, 2, 3, 4, 5)


class _NumpyWithFloat_(types.ModuleType):
    """numpy as imagecorruptions expects it: NumPy 2 plus the removed ``float_`` alias."""

    float_ = np.float64

    def __getattr__(self, name):
        return getattr(np, name)


def _pkg_resources_shim() -> types.ModuleType:
    shim = types.ModuleType("pkg_resources")
    # pkg_resources resolves a module's resource next to that module's file.
    shim.resource_filename = lambda module, path: os.path.join(os.path.dirname(sys.modules[module].__file__), path)
    return shim


@functools.cache
def _bridged():
    """Import imagecorruptions once with the four incompatibilities bridged; returns the module."""
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
    impl.np = _NumpyWithFloat_("numpy")
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


def corrupt(image: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """Corrupt one HxWx3 uint8 image; returns uint8 of the same shape."""
    check(name, severity)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise BenchmarkError(f"expected an HxWx3 uint8 image, got {image.dtype} {image.shape}")
    ic, impl = _bridged()
    np.random.seed(seed)
    with _seeded_skimage_noise(impl, seed):
        out = ic.corrupt(image, corruption_name=name, severity=severity)
    return np.asarray(out, dtype=np.uint8)
