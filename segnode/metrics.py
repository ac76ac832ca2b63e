"""Segmentation accuracy: confusion matrix, per-class IoU and mIoU (numpy and torch only)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ['ConfusionMatrix', 'confusion_matrix', 'iou_from_confusion']

IGNORE_ID = 255


def confusion_matrix(
    pred: Tensor | np.ndarray,
    target: Tensor | np.ndarray,
    num_classes: int,
    ignore_index: int = IGNORE_ID,
) -> np.ndarray:
    """K x K int64 counts; rows are ground truth, columns predictions.

    Pixels whose target is ``ignore_index`` or outside [0, K) are skipped (torchvision's
    bincount habit); predictions outside [0, K) are a ValueError.
    """
    p = torch.as_tensor(pred).reshape(-1).to(torch.int64)
    t = torch.as_tensor(target).reshape(-1).to(torch.int64)
    if p.shape != t.shape:
        raise ValueError(f'prediction has {p.numel()} pixels, target {t.numel()}')
    keep = (t >= 0) & (t < num_classes) & (t != ignore_index)
    p, t = p[keep], t[keep]
    if p.numel() and (int(p.min()) < 0 or int(p.max()) >= num_classes):
        raise ValueError(f'predictions must be in [0, {num_classes}), got {int(p.max())}')
    counts = torch.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).cpu().numpy()


def iou_from_confusion(matrix: np.ndarray) -> np.ndarray:
    """Per-class IoU = TP / (TP + FP + FN); NaN for classes absent from both."""
    matrix = matrix.astype(np.float64)
    tp = np.diag(matrix)
    union = matrix.sum(0) + matrix.sum(1) - tp
    with np.errstate(invalid='ignore', divide='ignore'):
        iou: np.ndarray = np.where(union > 0, tp / union, np.nan)
    return iou


class ConfusionMatrix:
    """A confusion matrix accumulated over a set of images.

    Intersection and union are summed over the whole set (the Cityscapes protocol), not
    averaged per image.

    Args:
        num_classes: K.
        ignore_index: Target value to skip.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_ID) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, pred: Tensor | np.ndarray, target: Tensor | np.ndarray) -> None:
        """Add one batch of predicted and ground-truth class maps of equal shape."""
        self.matrix += confusion_matrix(pred, target, self.num_classes, self.ignore_index)

    def iou(self) -> np.ndarray:
        """Per-class IoU (NaN for classes absent from predictions and ground truth)."""
        return iou_from_confusion(self.matrix)

    def miou(self) -> float:
        """Mean IoU over classes that occur in predictions or ground truth."""
        iou = self.iou()
        return float(np.nanmean(iou)) if np.isfinite(iou).any() else float('nan')

    def pixel_accuracy(self) -> float:
        """Fraction of labelled pixels predicted correctly."""
        total = self.matrix.sum()
        return float(np.trace(self.matrix) / total) if total else float('nan')

    def summary(self, class_names: list[str] | tuple[str, ...] | None = None) -> dict[str, Any]:
        """``miou``, ``pixel_accuracy``, ``per_class_iou`` (name -> IoU or None) and pixels."""
        names = list(class_names or (f'class_{k}' for k in range(self.num_classes)))
        iou = self.iou()
        return {
            'miou': self.miou(),
            'pixel_accuracy': self.pixel_accuracy(),
            'per_class_iou': {
                n: (None if np.isnan(v) else float(v)) for n, v in zip(names, iou, strict=True)
            },
            'pixels': int(self.matrix.sum()),
        }
