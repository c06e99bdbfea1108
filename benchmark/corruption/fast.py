"""Fast drop-in replacements for the slow imagecorruptions functions, same output to the bit.

Each function takes what the stock one takes (a PIL image, a severity) and returns what it returns
(a float array in [0, 255]), drawing the same numbers from ``np.random`` in the same order, so that
``np.uint8`` of it is identical for every seed. tests/test_corruptions.py proves it against the stock
module and against golden outputs from the reference stack.
"""
from __future__ import annotations

import numpy as np

# imagecorruptions 1.1.2 glass_blur: (sigma, max_delta, iterations) per severity.
GLASS_BLUR = [(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)]


def glass_shuffle_sources(height: int, width: int, delta: int, draws: np.ndarray) -> np.ndarray:
    """Flat source index of every pixel after one pass of stock glass_blur's "swap" loop.

    The stock loop visits h = H-d..d+1 and, inside, w = W-d..d+1 (both descending) and runs
    ``x[h, w], x[h', w'] = x[h', w'], x[h, w]``. On numpy rows that is not a swap: the right side holds
    views, so ``x[h, w]`` takes the value of ``x[h', w']`` and ``x[h', w']`` keeps its own. Hence each
    visited pixel p copies from q = p + (dy, dx) as q is at that moment: already rewritten if q was
    visited earlier (q comes after p in raster order, and so was visited first), else the pass's input.
    So src[p] = src[q] if q > p else q, resolved for all pixels at once by pointer doubling.
    ``draws`` is the (n_visited, 2) array of (dx, dy) in visiting order.
    """
    hs = np.arange(height - delta, delta, -1)
    ws = np.arange(width - delta, delta, -1)
    p = (hs[:, None] * width + ws[None, :]).ravel()
    q = p + draws[:, 1] * width + draws[:, 0]
    src = np.arange(height * width)
    src[p] = q
    pending = np.zeros(height * width, dtype=bool)
    pending[p] = q > p
    idx = np.flatnonzero(pending)
    while idx.size:
        nxt = src[idx]
        src[idx] = src[nxt]
        pending[idx] = pending[nxt]
        idx = idx[pending[idx]]
    return src


def glass_blur(x, severity, impl):
    """imagecorruptions.glass_blur without its per-pixel Python loop (``impl``: the bridged stock module)."""
    gaussian = impl.gaussian
    sigma, delta, iterations = GLASS_BLUR[severity - 1]
    x = np.uint8(gaussian(np.array(x) / 255.0, sigma=sigma, multichannel=True) * 255)
    height, width = x.shape[:2]
    n = max(height - 2 * delta, 0) * max(width - 2 * delta, 0)
    # One call draws the same stream as the stock loop's n calls of randint(size=(2,)) (tested).
    draws = np.random.randint(-delta, delta, size=(iterations, n, 2))
    flat = x.reshape(height * width, -1)
    for i in range(iterations):
        flat = flat[glass_shuffle_sources(height, width, delta, draws[i])]
    x = flat.reshape(x.shape)
    return np.clip(gaussian(x / 255.0, sigma=sigma, multichannel=True), 0, 1) * 255


# imagecorruptions 1.1.2 zoom_blur: zoom factors per severity.
ZOOM_BLUR = [np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01), np.arange(1, 1.21, 0.02),
             np.arange(1, 1.26, 0.02), np.arange(1, 1.31, 0.03)]  # fmt: skip


def zoom_blur(x, severity, impl):
    """imagecorruptions.zoom_blur with each channel zoomed in 2-D: scipy's order-1 zoom of an HxWx3 array
    with factor 1 on the channel axis weighs the other channel by exactly 0, so the sums are the same
    and half the work goes."""
    x = (np.array(x) / 255.0).astype(np.float32)
    height, width = x.shape[:2]
    channels = [np.ascontiguousarray(x[..., k]) for k in range(x.shape[2])]
    out = [np.zeros_like(ch) for ch in channels]
    for zoom_factor in ZOOM_BLUR[severity - 1]:
        # clipped_zoom: centre crop of 1/zoom of the image, zoomed back up.
        ch0, ch1 = int(np.ceil(height / float(zoom_factor))), int(np.ceil(width / float(zoom_factor)))
        top0, top1 = (height - ch0) // 2, (width - ch1) // 2
        for ch, acc in zip(channels, out):
            layer = impl.scizoom(ch[top0 : top0 + ch0, top1 : top1 + ch1], (zoom_factor, zoom_factor), order=1)
            layer = layer[:height, :width]
            acc[: layer.shape[0], : layer.shape[1]] += layer  # stock's fallback when a layer comes out smaller
    x = (x + np.stack(out, axis=-1)) / (len(ZOOM_BLUR[severity - 1]) + 1)
    return np.clip(x, 0, 1) * 255


# imagecorruptions 1.1.2 elastic_transform: displacement scale alpha per severity.
ELASTIC_ALPHA = [250 * 0.05, 250 * 0.065, 250 * 0.085, 250 * 0.1, 250 * 0.12]


def elastic_transform(image, severity, impl):
    """imagecorruptions.elastic_transform sampling each channel in 2-D (same argument as zoom_blur: the
    stock 3-D map_coordinates lands exactly on the channel, so its other taps weigh 0)."""
    image = np.array(image, dtype=np.float32) / 255.0
    shape = image.shape
    sigma = np.array(shape[:2]) * 0.01
    alpha = ELASTIC_ALPHA[severity - 1]
    max_d = shape[0] * 0.005  # stock uses the height for both max_dx and max_dy
    dx = (impl.gaussian(np.random.uniform(-max_d, max_d, size=shape[:2]), sigma, mode="reflect", truncate=3) * alpha).astype(np.float32)
    dy = (impl.gaussian(np.random.uniform(-max_d, max_d, size=shape[:2]), sigma, mode="reflect", truncate=3) * alpha).astype(np.float32)
    # int64 grid + float32 displacement is float64, as in the stock meshgrid version.
    rows, cols = np.arange(shape[0])[:, None] + dy, np.arange(shape[1])[None, :] + dx
    out = np.stack([impl.map_coordinates(image[..., k], (rows, cols), order=1, mode="reflect") for k in range(shape[2])], axis=-1)
    return np.clip(out, 0, 1) * 255


# name -> fn(PIL image, severity, bridged stock module) -> float array, as the stock function returns.
FAST = {"glass_blur": glass_blur, "zoom_blur": zoom_blur, "elastic_transform": elastic_transform}
