"""Generates reference_outputs.npz: imagecorruptions 1.1.2 on the reference stack it was written for.

Not run by the tests (they only read the .npz). Run it once in a virtual environment with
numpy 1.26.4, scikit-image 0.19.3, scipy 1.11.4, opencv 4.11.0, Pillow 13.0.0, setuptools<70,
imagecorruptions 1.1.2:
  NPY_DISABLE_CPU_FEATURES="AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL" \
      python tests/golden/make_golden.py tests/golden/reference_outputs.npz
(NumPy 1.26's float64 exp uses its own AVX512F code where the CPU has it and libm elsewhere; the last
bit moves motion_blur pixels. Disabling AVX512F pins the libm variant, the same on every CPU.)

The semantics it pins: output = ``np.random.seed(seed); imagecorruptions.corrupt(img, ...)``, except
impulse_noise, whose scikit-image generator ignores np.random.seed and is seeded with ``seed`` itself.
Stored: the two input images, every output as a sha256 digest (5 severities x 3 seeds x 2 sizes), and
the full output arrays for severity 3, seed 0 (to show where a mismatch is).
"""
import functools
import hashlib
import sys

import imagecorruptions
import imagecorruptions.corruptions as impl
import numpy as np
import skimage.data
from PIL import Image

SEEDS = (0, 1, 12345)
SEVERITIES = (1, 2, 3, 4, 5)
ARRAYS_FOR = (3, 0)  # (severity, seed) whose outputs are stored whole


def inputs() -> dict[str, np.ndarray]:
    photo = Image.fromarray(skimage.data.astronaut())
    return {"32x32": np.asarray(photo.resize((32, 32), Image.BILINEAR)),
            "48x40": np.asarray(photo.crop((100, 0, 400, 250)).resize((48, 40), Image.BILINEAR))}  # W x H


def main(out: str) -> None:
    stock_noise = impl.sk.util.random_noise
    store = {f"input/{k}": v for k, v in inputs().items()}
    for size, img in inputs().items():
        for name in imagecorruptions.get_corruption_names():
            for severity in SEVERITIES:
                for seed in SEEDS:
                    impl.sk.util.random_noise = functools.partial(stock_noise, seed=seed)  # skimage 0.19 name
                    np.random.seed(seed)
                    res = imagecorruptions.corrupt(img, corruption_name=name, severity=severity)
                    assert res.dtype == np.uint8 and res.shape == img.shape
                    store[f"sha256/{size}/{name}/{severity}/{seed}"] = np.frombuffer(hashlib.sha256(res.tobytes()).digest(), np.uint8)
                    if (severity, seed) == ARRAYS_FOR:
                        store[f"output/{size}/{name}/{severity}/{seed}"] = res
    impl.sk.util.random_noise = stock_noise
    versions = {m.__name__: m.__version__ for m in (np, skimage, __import__("scipy"), __import__("cv2"), __import__("PIL"))}
    store["versions"] = np.array(repr(versions))
    np.savez_compressed(out, **store)
    print(versions, len(store), "entries ->", out)


if __name__ == "__main__":
    main(sys.argv[1])
