"""segnode.train.evaluate: the summed matrix, and each image's own for statistics over images."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch
from torch import nn

from segnode.metrics import confusion_matrix
from segnode.train.evaluate import evaluate


def test_per_image_matrices_are_in_order_and_sum_to_the_total() -> None:
    torch.manual_seed(0)
    model = nn.Conv2d(3, 3, 1)  # pointwise: each pixel's class from its own colour
    samples = [
        {'image': torch.randn(3, 40, 48), 'label': torch.randint(0, 3, (40, 48))} for _ in range(4)
    ]
    samples[2]['label'][:10] = 255  # ignored pixels stay out of the image's matrix
    per_image: list[np.ndarray] = []
    total = evaluate(model, cast(Any, samples), 3, torch.device('cpu'), per_image=per_image)
    assert len(per_image) == 4
    assert np.array_equal(np.sum(per_image, axis=0), total.matrix)
    for sample, matrix in zip(samples, per_image, strict=True):
        with torch.no_grad():
            pred = model(sample['image'][None]).argmax(1)[0]
        assert np.array_equal(matrix, confusion_matrix(pred, sample['label'], 3))
    assert per_image[2].sum() == 40 * 48 - 10 * 48
    without = evaluate(model, cast(Any, samples), 3, torch.device('cpu'))
    assert np.array_equal(without.matrix, total.matrix)
