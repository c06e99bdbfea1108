"""``segproxy``: an embedded, offline semantic-segmentation proxy (card: datasets/segproxy.toml).

Real Fashion-MNIST garments composited onto real photos bundled with scikit-image, with exact masks:
a garment pixel is one whose (upscaled) intensity exceeds ``THRESHOLD``; it is painted with the garment's
intensity times a random colour tint and labelled ``1 + Fashion-MNIST class``; every other pixel shows
the photo and is labelled 0 (background). Mask and image come from the same upscaled garment, so the
labels are exact by construction.

Splits are disjoint in both garments and backgrounds: train and selection garments come from disjoint
parts of Fashion-MNIST's train split, val garments from its test split; every photo is cut into three
horizontal bands (train / selection / val), so no background pixel is shared between splits while the
background distribution (the same photos) stays the same: clean val is in-distribution. OOD = the
first ``n_ood`` val images under each imagecorruptions corruption (fog first); masks are not corrupted.
"""
from __future__ import annotations


import numpy as np
from PIL import Image

from benchmark.data import segmentation
from benchmark.corruption.cache import CorruptionCache, content_key
from benchmark.data import SuiteOptions, register_suite
from benchmark.data import fmnist
from benchmark.data.base import EvalSet, Suite
from benchmark.data.cards import fact
from benchmark.errors import BenchmarkError
from benchmark.data.segmentation import SegDataset

PHOTO_SIDE = 384  # every photo is resized to this square before it is cut into bands
# Rows of the resized photo each split draws its background crops from (disjoint).
BANDS = {"train": (0, 224), "selection": (224, 288), "val": (288, 384)}
CROP = (48, 64)  # background crop side range in photo pixels (fits the smallest band)
THRESHOLD = 50  # uint8 intensity above which an upscaled Fashion-MNIST pixel is garment

# Sized so `python -m benchmark run --suite segproxy` (every default method) takes a few minutes on 2 CPU cores.
DEFAULT_SIZES = {
    "n_train": 800,           # composited training images (garments from Fashion-MNIST train)
    "n_selection": 200,       # held out: other train garments, the selection band of each photo
    "n_val": 300,             # clean ID val images (garments from Fashion-MNIST test, val band)
    "n_ood": 64,              # of those, how many are corrupted per (corruption, severity)
    "severities": (1, 3, 5),  # documented subset of 1..5 that fits the time budget
    "corruptions": segmentation.CORRUPTIONS,
    "size": 64,               # canvas side in pixels (images are corrupted and fed at this size)
    "split_seed": 0,          # fixed across run seeds: seeds vary training, not the data
}  # fmt: skip


def check_sizes(sizes: dict) -> None:
    segmentation.check_corruptions(sizes)
    if not 0 < sizes["n_ood"] <= sizes["n_val"]:
        raise BenchmarkError("segproxy: n_ood must be in 1..n_val (OOD images are corrupted val images)")
    if sizes["size"] < 32:
        raise BenchmarkError("segproxy: size must be at least 32 (imagecorruptions needs 32x32 images)")


# Segmentation proxy: MTL-PyTorch's Adam family and weight decay (the PASCAL recipe, pascal.py) at 10x its lr
# for a 2-epoch CPU schedule. Measured here (800 images, 2 epochs, FT): SGD lr 0.01 clipped at 1.0 predicted
# background everywhere (mIoU 0.075); AdamW lr 1e-3 reached val mIoU 0.225.
RECIPE = {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4, "epochs": 2, "batch_size": 32, "warmup_steps": 0,
          "grad_clip": 1.0, "eval_batch_size": 100}  # fmt: skip


def photo_names() -> tuple[str, ...]:
    """scikit-image's bundled photos the card lists (natural scenes, textures, micrographs)."""
    return tuple(fact("segproxy", "backgrounds"))


def photos() -> list[np.ndarray]:
    """The background photos as PHOTO_SIDE^2 RGB uint8 arrays (grey ones made RGB)."""
    import skimage.data

    out = []
    for name in photo_names():
        try:
            img = np.asarray(getattr(skimage.data, name)())
        except Exception as e:  # skimage raises several types when a bundled file is missing
            raise BenchmarkError(f"segproxy needs scikit-image's bundled photo {name!r}: {e}") from None
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        out.append(np.asarray(Image.fromarray(img[..., :3].astype(np.uint8)).resize((PHOTO_SIDE, PHOTO_SIDE), Image.BILINEAR)))
    return out


def composite(garments: np.ndarray, labels: np.ndarray, backgrounds: list[np.ndarray], band: tuple[int, int],
              size: int, seed) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """One image per garment: a random crop of a random photo's band, the garment scaled and pasted at a
    random place with a random tint. Returns (images N x size x size x 3, masks N x size x size) uint8."""
    rng = np.random.default_rng(seed)
    images = np.empty((len(garments), size, size, 3), dtype=np.uint8)
    masks = np.zeros((len(garments), size, size), dtype=np.uint8)
    for i, (garment, label) in enumerate(zip(garments, labels)):
        photo = backgrounds[rng.integers(len(backgrounds))]
        side = int(rng.integers(CROP[0], CROP[1] + 1))
        top = int(rng.integers(band[0], band[1] - side + 1))
        left = int(rng.integers(0, PHOTO_SIDE - side + 1))
        crop = Image.fromarray(photo[top : top + side, left : left + side])
        images[i] = np.asarray(crop.resize((size, size), Image.BILINEAR))
        g = int(rng.integers(round(0.45 * size), round(0.75 * size) + 1))  # garment side: 28-48 px at 64
        up = np.asarray(Image.fromarray(garment).resize((g, g), Image.BILINEAR))
        y0, x0 = (int(v) for v in rng.integers(0, size - g + 1, size=2))
        on = up > THRESHOLD
        tint = rng.uniform(0.35, 1.0, size=3)
        region = images[i, y0 : y0 + g, x0 : x0 + g]
        region[on] = (up[on, None] * tint).astype(np.uint8)
        masks[i, y0 : y0 + g, x0 : x0 + g][on] = label + 1
    return images, masks


# Segmentation: methods whose loss and variants are defined per pixel (not LP, LP-FT, FLYP, zero-shot).
@register_suite("segproxy", "PROXY: Fashion-MNIST garments on scikit-image photos, 11-class segmentation (mIoU) vs 15 corruptions; offline",
                recipe=RECIPE, sizes=DEFAULT_SIZES, backbone="seg-lite0", image_size=64, methods=("ft", "l2-sp", "tpgm", "ftp"),
                needs=lambda sizes: {"fashion-mnist": fmnist.find})
def segproxy(opts: SuiteOptions) -> Suite:
    sizes = opts.sizes
    check_sizes(sizes)
    files = fmnist.find(opts.data_root)
    train_x, train_y = fmnist.load_split(files, "train")
    test_x, test_y = fmnist.load_split(files, "test")
    seed, size = sizes["split_seed"], sizes["size"]
    n_pool = sizes["n_train"] + sizes["n_selection"]
    if n_pool > len(train_x) or sizes["n_val"] > len(test_x):
        raise BenchmarkError(f"segproxy sizes exceed Fashion-MNIST: n_train + n_selection <= {len(train_x)}, n_val <= {len(test_x)}")
    pool = np.random.default_rng(seed).permutation(len(train_x))[:n_pool]
    train_idx, selection_idx = pool[: sizes["n_train"]], pool[sizes["n_train"] :]
    val_idx = np.random.default_rng(seed + 1).permutation(len(test_x))[: sizes["n_val"]]
    backgrounds = photos()

    def make(x, y, idx, split, split_no):
        return composite(x[idx], y[idx], backgrounds, BANDS[split], size, (seed, split_no))

    train = make(train_x, train_y, train_idx, "train", 0)
    selection = make(train_x, train_y, selection_idx, "selection", 1)
    val_images, val_masks = make(test_x, test_y, val_idx, "val", 2)

    n_ood = sizes["n_ood"]
    pairs = [(c, s) for c in sizes["corruptions"] for s in sizes["severities"]]
    clean = val_images[:n_ood]
    corrupted = CorruptionCache(opts.cache_dir / "segproxy" / content_key(clean), clean).load(pairs, opts.workers, opts.progress)

    def ds(images, masks, train=False):
        return SegDataset(images, masks, opts.train_transform if train else opts.eval_transform, flip=train)

    evals = [EvalSet("segproxy", "id", ds(val_images, val_masks), metric="miou")]
    evals += [EvalSet(f"{c}@{s}", "ood", ds(corrupted[c, s], val_masks[:n_ood]), metric="miou", group=c) for c, s in pairs]
    return Suite(
        name="segproxy",
        classnames=["background", *fmnist.classnames()],  # label 1 + Fashion-MNIST class
        train=ds(*train, train=True),
        selection=ds(*selection),
        evals=evals,
        task="segmentation",
        notes={"sizes": {k: list(v) if isinstance(v, tuple) else v for k, v in sizes.items()}, "proxy": True},
    )
