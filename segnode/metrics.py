"""Segmentation accuracy (confusion matrix, per-class IoU, mIoU) and latency statistics."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any
import warnings

import numpy as np
import torch
from torch import Tensor

from segnode.config import IGNORE_ID

__all__ = [
    'IGNORE_ID',
    'LATENCY_KEYS',
    'ConfusionMatrix',
    'confusion_matrix',
    'format_table',
    'iou_from_confusion',
    'latency_summary',
    'paired_bootstrap',
    'percentiles',
    'save_confusion_png',
    'unknown_label_pixels',
]


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


def unknown_label_pixels(
    target: Tensor | np.ndarray, num_classes: int, ignore_index: int = IGNORE_ID
) -> int:
    """Pixels whose label is neither a class id 0..K-1 nor ``ignore_index`` (scored as ignore)."""
    t = np.asarray(target)
    return int(
        np.count_nonzero((t >= num_classes) & (t != ignore_index)) + np.count_nonzero(t < 0)
    )


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
        self.unknown_pixels = 0  # labels outside 0..K-1 that are not ignore_index

    def update(self, pred: Tensor | np.ndarray, target: Tensor | np.ndarray) -> None:
        """Add one batch of predicted and ground-truth class maps of equal shape."""
        self.matrix += confusion_matrix(pred, target, self.num_classes, self.ignore_index)
        self.unknown_pixels += unknown_label_pixels(target, self.num_classes, self.ignore_index)

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
        """``miou``, ``pixel_accuracy``, ``per_class_iou``, ``pixels`` and unknown labels.

        ``per_class_iou`` maps name -> IoU or None; ``unknown_label_pixels`` counts labels
        outside 0..K-1 (not ``ignore_index``), which were skipped.
        """
        names = list(class_names or (f'class_{k}' for k in range(self.num_classes)))
        iou = self.iou()
        return {
            'miou': self.miou(),
            'pixel_accuracy': self.pixel_accuracy(),
            'per_class_iou': {
                n: (None if np.isnan(v) else float(v)) for n, v in zip(names, iou, strict=True)
            },
            'pixels': int(self.matrix.sum()),
            'unknown_label_pixels': self.unknown_pixels,
        }


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, resamples: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """How sure a difference in IoU is: models A and B, resampling the images they share.

    ``a`` and ``b`` are (N, K, K) stacks of per-image confusion matrices of two models on the
    same N images, in the same order. Each resample draws N images with replacement, sums
    each model's matrices over them (as the score itself does) and takes A - B. Returns the
    difference on all images, its 2.5 and 97.5 percentiles over the resamples (``low``,
    ``high``), the share of resamples in which A's mIoU is higher, and the same difference
    and interval per class (``per_class``: lists in class order; NaN where a class is absent).
    """
    if a.shape != b.shape or a.ndim != 3 or a.shape[1] != a.shape[2] or not len(a):
        raise ValueError(f'need two equal (N, K, K) stacks with N > 0, got {a.shape} {b.shape}')
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(len(a), np.full(len(a), 1 / len(a)), size=resamples)
    ious = np.empty((2, resamples + 1, a.shape[1]))
    for row, w in enumerate([np.ones(len(a), dtype=np.int64), *weights]):
        ious[0, row] = iou_from_confusion(np.tensordot(w, a, axes=1))
        ious[1, row] = iou_from_confusion(np.tensordot(w, b, axes=1))
    with np.errstate(invalid='ignore'), warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)  # a class absent from every resample
        miou = np.nanmean(ious[0], axis=1) - np.nanmean(ious[1], axis=1)
        diffs = ious[0] - ious[1]
        low, high = np.nanpercentile(diffs[1:], [2.5, 97.5], axis=0)
    return {
        'images': len(a),
        'resamples': resamples,
        'miou_difference': float(miou[0]),
        'low': float(np.percentile(miou[1:], 2.5)),
        'high': float(np.percentile(miou[1:], 97.5)),
        'share_a_better': float(np.mean(miou[1:] > 0)),
        'per_class': {'difference': diffs[0].tolist(), 'low': low.tolist(), 'high': high.tolist()},
    }


# The keys of ``latency_summary``, in order.
LATENCY_KEYS = ('count', 'mean', 'p50', 'p90', 'p99', 'max')


def percentiles(values: Sequence[float] | np.ndarray, qs: Sequence[float]) -> list[float]:
    """The ``qs`` percentiles of the finite ``values``, by numpy's linear interpolation.

    NaN for each when no value is finite.
    """
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return [float('nan')] * len(qs)
    return [float(v) for v in np.percentile(arr, list(qs), method='linear')]


def latency_summary(values_ms: Sequence[float]) -> dict[str, float]:
    """Count, mean, 50th/90th/99th percentiles and maximum of latencies in milliseconds.

    Percentiles use numpy's default linear interpolation. NaN and infinite values (a stage
    that was not timed for a frame) are dropped first and not counted.

    Args:
        values_ms: One latency per frame, in ms.

    Returns:
        ``count`` (an int), ``mean``, ``p50``, ``p90``, ``p99`` and ``max``. With no finite
        value, ``count`` is 0 and the others are ``float('nan')`` (JSON writers must turn
        NaN into null).
    """
    values = np.asarray(values_ms, dtype=np.float64).reshape(-1)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {'count': 0, **{key: float('nan') for key in LATENCY_KEYS[1:]}}
    p50, p90, p99 = percentiles(values, (50.0, 90.0, 99.0))
    return {
        'count': int(values.size),
        'mean': float(values.mean()),
        'p50': float(p50),
        'p90': float(p90),
        'p99': float(p99),
        'max': float(values.max()),
    }


def save_confusion_png(
    matrix: np.ndarray, names: Sequence[str], path: str | Path, title: str = ''
) -> Path:
    """Row-normalised confusion matrix (ground truth rows, predictions columns) as a PNG."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    rows = matrix.sum(axis=1, keepdims=True).astype(np.float64)
    norm = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
    k = len(names)
    size = max(5.0, 0.45 * k + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm, cmap='Blues', vmin=0.0, vmax=1.0)
    ax.set_xticks(range(k), list(names), rotation=90)
    ax.set_yticks(range(k), list(names))
    ax.set_xlabel('prediction')
    ax.set_ylabel('ground truth')
    if k <= 30:
        for i in range(k):
            for j in range(k):
                if norm[i, j] >= 0.01:
                    colour = 'white' if norm[i, j] > 0.5 else 'black'
                    ax.text(
                        j,
                        i,
                        f'{norm[i, j]:.2f}',
                        ha='center',
                        va='center',
                        fontsize=6,
                        color=colour,
                    )
    ax.set_title(title or 'confusion matrix (row-normalised)')
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def format_table(summary: dict[str, Any]) -> str:
    """Per-class IoU, mIoU and pixel accuracy as aligned text lines, as fractions (0..1).

    Fractions, as training logs, replay and every JSON file report them.
    """
    per_class = summary['per_class_iou']
    width = max(len(n) for n in [*per_class, 'pixel accuracy'])

    def cell(value: float | None) -> str:
        return '-' if value is None or value != value else f'{value:.4f}'

    lines = [f'{name:<{width}}  {cell(v)}' for name, v in per_class.items()]
    lines.append(f'{"mIoU":<{width}}  {cell(summary["miou"])}')
    lines.append(f'{"pixel accuracy":<{width}}  {cell(summary.get("pixel_accuracy"))}')
    if summary.get('unknown_label_pixels'):
        lines.append(
            f'note: {summary["unknown_label_pixels"]} label pixels hold ids outside '
            f'0..{len(per_class) - 1} (and not {IGNORE_ID}): scored as ignore'
        )
    return '\n'.join(lines)
