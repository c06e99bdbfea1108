"""mIoU / pixel accuracy against hand-computed confusion matrices; the evaluate() dispatch on metric."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from benchmark.data.base import EvalSet
from benchmark.errors import BenchmarkError
from benchmark.engine import evaluate
from benchmark.data.segmentation import LOSS_IGNORE, SegDataset, mask_tensor
from benchmark.engine.metrics import confusion_matrix, scores


def test_confusion_matrix_by_hand_with_ignored_pixels():
    target = torch.tensor([[0, 0, 1], [1, 255, 2]])
    pred = torch.tensor([[0, 1, 1], [1, 2, 0]])
    conf = confusion_matrix(pred, target, 4)
    # rows = target, cols = prediction; the 255 pixel (predicted 2) is not counted
    expected = torch.tensor([[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    assert torch.equal(conf, expected)
    s = scores(conf)
    # IoU0 = 1/(1+1+1) ; IoU1 = 2/(2+1+0) ; IoU2 = 0/(0+1+0) ; class 3 absent from both -> excluded
    assert s["per_class"][3] is None
    assert s["per_class"][:3] == pytest.approx([1 / 3, 2 / 3, 0.0])
    assert s["miou"] == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)
    assert s["pixel_acc"] == pytest.approx(3 / 5)


def test_class_only_predicted_counts_in_the_mean():
    # class 1 never in the target but predicted once: IoU 0, and it lowers the mean
    conf = confusion_matrix(torch.tensor([0, 1, 0]), torch.tensor([0, 0, 0]), 2)
    s = scores(conf)
    assert s["per_class"] == pytest.approx([2 / 3, 0.0])
    assert s["miou"] == pytest.approx(1 / 3)


def test_loss_ignore_label_is_ignored_too_and_range_is_checked():
    conf = confusion_matrix(torch.tensor([1, 1]), torch.tensor([1, LOSS_IGNORE]), 2)
    assert conf.sum() == 1
    with pytest.raises(BenchmarkError, match="label 5 out of range"):
        confusion_matrix(torch.tensor([0]), torch.tensor([5]), 3)


def test_mask_follows_image_size_and_void_becomes_loss_ignore():
    mask = np.array([[0, 255], [2, 1]], dtype=np.uint8)
    y = mask_tensor(mask, (4, 4))
    assert y.shape == (4, 4) and y[0, 3] == LOSS_IGNORE and y[3, 0] == 2
    assert torch.nn.functional.cross_entropy(torch.zeros(1, 3, 4, 4), y[None]).isfinite()


class Oracle(nn.Module):
    """Logits that predict the red channel of the image (scaled back to a class index)."""

    def forward(self, x):
        classes = (x[:, 0] * 255).round().long().clamp(0, 2)
        return nn.functional.one_hot(classes, 3).permute(0, 3, 1, 2).float()


def test_evaluate_writes_miou_and_pixel_acc_rows_from_one_confusion_matrix():
    from torchvision.transforms import ToTensor

    masks = np.array([[[0, 1], [2, 255]], [[1, 1], [0, 0]]], dtype=np.uint8)
    preds = np.array([[[0, 1], [1, 0]], [[1, 1], [0, 0]]], dtype=np.uint8)  # one wrong pixel (2 -> 1)
    images = np.zeros((2, 2, 2, 3), dtype=np.uint8)
    images[..., 0] = preds
    ds = SegDataset(images, masks, ToTensor())
    rows = evaluate(Oracle(), [EvalSet("toy", "id", ds, metric="miou")], torch.device("cpu"), batch_size=1, progress=False)
    by_metric = {r["metric"]: r for r in rows}
    # target/pred over both images: class0 3/3 right, class1 3 right + 1 false positive, class2 1 missed
    assert by_metric["miou"]["value"] == pytest.approx((1 + 3 / 4 + 0) / 3)
    assert by_metric["pixel_acc"]["value"] == pytest.approx(6 / 7)
    assert by_metric["miou"]["per_class"] == pytest.approx([1.0, 0.75, 0.0])
    assert all(r["n"] == 2 and r["eval"] == "toy" for r in rows)
    assert not math.isnan(by_metric["miou"]["value"])
