"""Scoring a model on eval sets: top-1 accuracy through each set's label map, mIoU and pixel accuracy.

Under torchrun every process scores its own contiguous share of each set (none padded, none repeated) and the
counts (correct predictions, confusion matrices) are summed across processes: exact, and the same on every
process."""
from __future__ import annotations

import itertools

import torch
from torch.utils.data import ConcatDataset, Subset
from tqdm import tqdm

from benchmark.engine import distributed
from benchmark.engine.loaders import autocast, loader
from benchmark.engine.metrics import accuracy_from_counts, confusion_matrix, scores


def my_share(dataset):
    """This process's contiguous share of `dataset` (all of it on one process)."""
    return dataset if distributed.world_size() == 1 else Subset(dataset, distributed.share(len(dataset)))


@torch.no_grad()
def predictions(model, batches, label_map, device, bar=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted class indices of `batches` (in the eval set's label space; label_map None = the model's own) and
    their targets."""
    preds, targets = [], []
    for x, y in batches:
        with autocast(device):
            logits = model(x.to(device, non_blocking=True))
        logits = logits.float() if label_map is None else label_map(logits.float())
        preds.append(logits.argmax(dim=1).cpu())
        targets.append(y)
        if bar is not None:
            bar.update(len(y))
    return torch.cat(preds), torch.cat(targets)


def predict(model, dataset, label_map, device, batch_size: int, bar=None,
            workers: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Predictions and targets of `dataset`, its images loaded by `workers` processes."""
    return predictions(model, loader(dataset, batch_size, workers=workers), label_map, device, bar)


def top1_of(model, batches, size: int, label_map, device, bar=None) -> tuple[int, int]:
    """Correct top-1 predictions in `batches` (this process's `size` images of a set) and the set's size, both
    summed over processes."""
    correct = 0
    if size:
        preds, targets = predictions(model, batches, label_map, device, bar)
        correct = int((preds == targets).sum())
    total = distributed.all_sum(torch.tensor([correct, size]))
    return int(total[0]), int(total[1])


def top1_counts(model, dataset, label_map, device, batch_size: int, bar=None, workers: int = 0) -> tuple[int, int]:
    """Correct top-1 predictions on `dataset` and its size, summed over processes (each predicts its share)."""
    mine = my_share(dataset)
    return top1_of(model, loader(mine, batch_size, workers=workers), len(mine), label_map, device, bar)


def evaluate(model, eval_sets: list, device, batch_size: int, desc="eval", progress=True,
             workers: int = 0) -> list[dict]:
    """One row per eval set: {eval, role, group, metric, value, n}. One loader reads every set, in the batches
    each would have alone, so that its `workers` processes start once rather than once per set (on a suite of
    many small sets, such as fmnist-c's 47, starting them would take longer than reading the images)."""
    model.eval()
    shares = [my_share(e.dataset) for e in eval_sets]  # this process's images
    sizes = [len(share) for share in shares]
    batches = iter(loader(ConcatDataset(shares), batch_size, workers=workers, parts=sizes))
    rows = []
    with tqdm(total=sum(sizes), desc=desc, unit="img", leave=False, disable=not progress) as bar:
        for e, size in zip(eval_sets, sizes):
            mine = itertools.islice(batches, -(-size // batch_size))
            if e.metric == "miou":
                rows += segmentation_rows(model, e, mine, device, bar)
                continue
            correct, n = top1_of(model, mine, size, e.label_map, device, bar)
            rows.append({"eval": e.name, "role": e.role, "group": e.group, "metric": "acc",
                         "value": accuracy_from_counts(correct, n), "n": n})  # fmt: skip
    return rows


@torch.no_grad()
def segmentation_rows(model, e, batches, device, bar=None) -> list[dict]:
    """mIoU and pixel accuracy of eval set `e` (this process's share of it in `batches`) from one confusion matrix
    accumulated over the set (per-class IoU kept on the mIoU row as ``per_class``, None where a class is absent
    from target and prediction)."""
    conf = None
    for x, y in batches:
        with autocast(device):
            logits = e.label_map(model(x.to(device, non_blocking=True)).float())
        c = confusion_matrix(logits.argmax(dim=1), y.to(logits.device), logits.shape[1])
        conf = c if conf is None else conf + c
        if bar is not None:
            bar.update(len(y))
    if distributed.world_size() > 1:
        # A process whose share is empty has no matrix yet: the class count comes from the others.
        classes = max(distributed.all_objects(0 if conf is None else len(conf)))
        conf = distributed.all_sum(torch.zeros(classes, classes, dtype=torch.long) if conf is None else conf)
    s = scores(conf)
    base = {"eval": e.name, "role": e.role, "group": e.group, "n": len(e.dataset)}
    return [{**base, "metric": "miou", "value": s["miou"], "per_class": s["per_class"]},
            {**base, "metric": "pixel_acc", "value": s["pixel_acc"]}]  # fmt: skip
