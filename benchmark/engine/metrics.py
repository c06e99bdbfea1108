"""Scores: top-1 accuracy, and mIoU / pixel accuracy from a confusion matrix.

mIoU. A confusion matrix is accumulated over every labelled pixel of an eval set (label 255, the PASCAL
"void"/boundary label, and negative loss-ignore labels are skipped), then IoU_c = TP_c / (TP_c + FP_c + FN_c)
per class and mIoU is the mean over the classes present in the target or the prediction of that set. A class
absent from both has IoU 0/0: it is excluded from the mean (the usual convention, e.g. mmsegmentation's
nanmean). Multi-Task-Learning-PyTorch's ``SemsegMeter`` scores such a class 0 instead; on a full PASCAL val
split every class occurs, so the two agree there and differ only on small subsets. Pixel accuracy = correct
labelled pixels / labelled pixels.
"""
from __future__ import annotations

import torch

from benchmark.data.base import IGNORE
from benchmark.errors import BenchmarkError


def accuracy(preds: torch.Tensor, targets: torch.Tensor) -> float:
    return (preds == targets).float().mean().item()


def accuracy_from_counts(correct: int, n: int) -> float:
    """`correct` / `n` rounded to float32 as ``accuracy`` rounds its mean, so counts summed over processes give
    the same bits as one process's accuracy on all the predictions (integer counts are exact in float32)."""
    return (torch.tensor(correct, dtype=torch.float32) / n).item()


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(C, C) int64 counts, rows = target class, columns = predicted class; ignored pixels dropped."""
    target, pred = target.reshape(-1).long(), pred.reshape(-1).long()
    keep = (target >= 0) & (target != IGNORE)
    target, pred = target[keep], pred[keep]
    if target.numel() and int(target.max()) >= num_classes:
        raise BenchmarkError(f"mask label {int(target.max())} out of range for {num_classes} classes (0..{num_classes - 1}, 255 = ignore)")
    return torch.bincount(target * num_classes + pred, minlength=num_classes**2).reshape(num_classes, num_classes).cpu()


def scores(conf: torch.Tensor) -> dict:
    """mIoU, pixel accuracy and per-class IoU (None for classes absent from both target and prediction)."""
    conf = conf.double()
    tp = conf.diag()
    union = conf.sum(0) + conf.sum(1) - tp
    iou = [float(t / u) if u > 0 else None for t, u in zip(tp, union)]
    present = [v for v in iou if v is not None]
    total = conf.sum().item()
    return {"miou": sum(present) / len(present) if present else float("nan"),
            "pixel_acc": tp.sum().item() / total if total else float("nan"), "per_class": iou}  # fmt: skip


