"""Confusion matrix, IoU and mIoU on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from segnode.metrics import (
    confusion_matrix,
    ConfusionMatrix,
    format_table,
    iou_from_confusion,
    latency_summary,
    paired_bootstrap,
)


def test_confusion_matrix_by_hand_with_ignore() -> None:
    target = np.array([[0, 0, 1], [1, 2, 255]])
    pred = np.array([[0, 1, 1], [1, 0, 2]])
    expected = np.array([[1, 1, 0], [0, 2, 0], [1, 0, 0]])
    assert np.array_equal(confusion_matrix(pred, target, 3), expected)
    assert np.array_equal(confusion_matrix(torch.tensor(pred), torch.tensor(target), 3), expected)


def test_iou_and_miou_by_hand() -> None:
    matrix = ConfusionMatrix(4)
    matrix.update(np.array([0, 1, 1, 1, 0]), np.array([0, 0, 1, 2, 255]))
    iou = matrix.iou()
    # class 0: TP 1, FP 0, FN 1 -> 1/2; class 1: TP 1, FP 2 (from 0 and 2) -> 1/3;
    # class 2: TP 0 -> 0; class 3 absent everywhere -> NaN (excluded from the mean)
    assert iou[:3] == pytest.approx([0.5, 1 / 3, 0.0])
    assert math.isnan(iou[3])
    assert matrix.miou() == pytest.approx((0.5 + 1 / 3) / 3)
    assert matrix.pixel_accuracy() == pytest.approx(2 / 4)
    summary = matrix.summary(['a', 'b', 'c', 'd'])
    assert summary['per_class_iou']['d'] is None and summary['pixels'] == 4


def test_accumulates_over_images() -> None:
    matrix = ConfusionMatrix(2)
    matrix.update(np.array([0, 1]), np.array([0, 1]))
    matrix.update(np.array([1, 1]), np.array([0, 1]))
    assert np.array_equal(matrix.matrix, [[1, 1], [0, 2]])
    assert iou_from_confusion(matrix.matrix) == pytest.approx([0.5, 2 / 3])


def test_rejects_bad_predictions() -> None:
    with pytest.raises(ValueError, match=r'predictions must be in \[0, 2\)'):
        confusion_matrix(np.array([0, 5]), np.array([0, 1]), 2)
    with pytest.raises(ValueError, match='prediction has 1 pixels, target 2'):
        confusion_matrix(np.array([0]), np.array([0, 1]), 2)


def test_latency_summary_by_hand() -> None:
    # 1..11 ms: linear percentiles at rank q/100 * 10 -> p50 6, p90 10, p99 10.9
    summary = latency_summary([float(v) for v in range(11, 0, -1)])
    assert summary == pytest.approx(
        {'count': 11, 'mean': 6.0, 'p50': 6.0, 'p90': 10.0, 'p99': 10.9, 'max': 11.0}
    )
    assert isinstance(summary['count'], int)
    # two values: p90 = 1 + 0.9 * (3 - 1)
    assert latency_summary([1.0, 3.0])['p90'] == pytest.approx(2.8)


def test_latency_summary_empty_and_non_finite() -> None:
    empty = latency_summary([])
    assert empty['count'] == 0
    assert all(math.isnan(empty[k]) for k in ('mean', 'p50', 'p90', 'p99', 'max'))
    assert latency_summary([float('nan'), 4.0, float('inf')]) == pytest.approx(
        {'count': 1, 'mean': 4.0, 'p50': 4.0, 'p90': 4.0, 'p99': 4.0, 'max': 4.0}
    )
    assert latency_summary([float('nan')])['count'] == 0


def test_labels_no_class_has_are_counted_and_named_in_the_table() -> None:
    matrix = ConfusionMatrix(3)
    matrix.update(np.zeros((2, 3), np.int64), np.array([[0, 7, 255], [1, 3, 2]]))
    summary = matrix.summary(['a', 'b', 'c'])
    assert summary['unknown_label_pixels'] == 2 and summary['pixels'] == 3
    assert 'note: 2 label pixels hold ids outside 0..2 (and not 255)' in format_table(summary)
    assert 'note' not in format_table({**summary, 'unknown_label_pixels': 0})


def _images(rng: np.random.Generator, n: int, wrong: float) -> np.ndarray:
    """``n`` per-image 3-class matrices with about ``wrong`` of each class's pixels mislabelled."""
    stack = np.zeros((n, 3, 3), dtype=np.int64)
    for i in range(n):
        for k in range(3):
            pixels = int(rng.integers(50, 150))
            missed = int(rng.binomial(pixels, wrong))
            stack[i, k, k], stack[i, k, (k + 1) % 3] = pixels - missed, missed
    return stack


def test_paired_bootstrap_of_a_model_better_on_every_image() -> None:
    rng = np.random.default_rng(1)
    good, bad = _images(rng, 40, 0.05), _images(rng, 40, 0.3)
    found = paired_bootstrap(good, bad, resamples=500)
    expected = np.nanmean(iou_from_confusion(good.sum(0))) - np.nanmean(
        iou_from_confusion(bad.sum(0))
    )
    assert found['miou_difference'] == pytest.approx(expected)
    assert 0 < found['low'] < found['miou_difference'] < found['high']
    assert found['share_a_better'] == 1.0 and found['images'] == 40
    assert all(low > 0 for low in found['per_class']['low'])
    reverse = paired_bootstrap(bad, good, resamples=500)
    assert reverse['miou_difference'] == pytest.approx(-expected)
    assert reverse['share_a_better'] == 0.0


def test_paired_bootstrap_of_a_tie_straddles_zero() -> None:
    rng = np.random.default_rng(2)
    first, second = _images(rng, 30, 0.05), _images(rng, 30, 0.3)
    a = np.concatenate([first, second])  # A good on the first half, B on the second
    b = np.concatenate([second, first])
    found = paired_bootstrap(a, b, resamples=500, seed=3)
    assert found['low'] < 0 < found['high']
    assert 0.05 < found['share_a_better'] < 0.95
    same = paired_bootstrap(a, a, resamples=50)
    assert same['miou_difference'] == same['low'] == same['high'] == 0.0


def test_paired_bootstrap_refuses_stacks_that_do_not_pair() -> None:
    a = np.zeros((4, 3, 3), dtype=np.int64)
    with pytest.raises(ValueError, match='equal'):
        paired_bootstrap(a, a[:3])
    with pytest.raises(ValueError, match='N > 0'):
        paired_bootstrap(a[:0], a[:0])
