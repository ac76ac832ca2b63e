"""Class weights of the training loss, from the training split's label frequencies.

``enet`` is ENet's weighting, ``1 / ln(1.02 + p_c)`` with ``p_c`` the share of labelled pixels
of class ``c``: a class covering half the pixels weighs about 1.9, a class never seen about 50.
``median`` is median-frequency balancing (SegNet): ``median(p) / p_c``, capped at 50 for
classes almost never labelled. Rare and thin classes (pole, sign, bicyclist on CamVid) get a
larger share of the gradient than their pixel count gives them. Both are computed from the
labels as read (no augmentation), once per run: the same files give the same weights on resume.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from segnode.train.config import CLASS_WEIGHTS

__all__ = ['class_weights', 'label_frequencies']

_ENET_C = 1.02
_CAP = 50.0


def label_frequencies(labels: Iterable[np.ndarray], num_classes: int) -> np.ndarray:
    """Each class's share of the labelled pixels (ids >= ``num_classes`` are not counted)."""
    counts = np.zeros(num_classes, dtype=np.int64)
    for label in labels:
        counts += np.bincount(label.ravel(), minlength=256)[:num_classes]
    total = counts.sum()
    if total == 0:
        raise ValueError('the training labels hold no labelled pixel')
    return np.asarray(counts / total, dtype=np.float64)


def class_weights(kind: str, frequencies: np.ndarray) -> torch.Tensor | None:
    """The (K,) float32 weights of ``kind`` for these frequencies; None for ``none``."""
    if kind == 'none':
        return None
    if kind == 'enet':
        weights = 1.0 / np.log(_ENET_C + frequencies)
    elif kind == 'median':
        seen = frequencies[frequencies > 0]
        weights = np.minimum(np.median(seen) / np.maximum(frequencies, 1e-12), _CAP)
    else:
        raise ValueError(f'class_weights must be one of {", ".join(CLASS_WEIGHTS)}, got {kind!r}')
    return torch.tensor(weights, dtype=torch.float32)
