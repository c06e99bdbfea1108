"""Scoring a model on eval sets: top-1 accuracy through each set's label map."""
from __future__ import annotations

import torch
from tqdm import tqdm

from benchmark.engine.loaders import autocast, loader
from benchmark.engine.metrics import accuracy, confusion_matrix, scores


@torch.no_grad()
def predict(model, dataset, label_map, device, batch_size: int, bar=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted class indices (in the eval set's label space; label_map None = the model's own) and targets."""
    preds, targets = [], []
    for x, y in loader(dataset, batch_size):
        with autocast(device):
            logits = model(x.to(device, non_blocking=True))
        logits = logits.float() if label_map is None else label_map(logits.float())
        preds.append(logits.argmax(dim=1).cpu())
        targets.append(y)
        if bar is not None:
            bar.update(len(y))
    return torch.cat(preds), torch.cat(targets)


def evaluate(model, eval_sets: list, device, batch_size: int, desc="eval", progress=True) -> list[dict]:
    """One row per eval set: {eval, role, group, metric, value, n}."""
    model.eval()
    rows = []
    total = sum(len(e.dataset) for e in eval_sets)
    with tqdm(total=total, desc=desc, unit="img", leave=False, disable=not progress) as bar:
        for e in eval_sets:
            if e.metric == "miou":
                rows += segmentation_rows(model, e, device, batch_size, bar)
                continue
            preds, targets = predict(model, e.dataset, e.label_map, device, batch_size, bar)
            rows.append({"eval": e.name, "role": e.role, "group": e.group, "metric": "acc",
                         "value": accuracy(preds, targets), "n": len(targets)})  # fmt: skip
    return rows


@torch.no_grad()
def segmentation_rows(model, e, device, batch_size: int, bar=None) -> list[dict]:
    """mIoU and pixel accuracy from one confusion matrix accumulated over the set (per-class IoU kept
    on the mIoU row as ``per_class``, None where a class is absent from target and prediction)."""
    conf = None
    for x, y in loader(e.dataset, batch_size):
        with autocast(device):
            logits = e.label_map(model(x.to(device, non_blocking=True)).float())
        c = confusion_matrix(logits.argmax(dim=1), y.to(logits.device), logits.shape[1])
        conf = c if conf is None else conf + c
        if bar is not None:
            bar.update(len(y))
    s = scores(conf)
    base = {"eval": e.name, "role": e.role, "group": e.group, "n": len(e.dataset)}
    return [{**base, "metric": "miou", "value": s["miou"], "per_class": s["per_class"]},
            {**base, "metric": "pixel_acc", "value": s["pixel_acc"]}]  # fmt: skip
