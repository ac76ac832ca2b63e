"""Binary boundary ground truth of the MJS loss (docs/model.md, "Boundary ground truth")."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ['binary_boundary']

_KERNEL = np.full((5, 5), 1.0 / 25.0, dtype=np.float32)


def binary_boundary(label: np.ndarray, threshold: float = 0.005) -> np.ndarray:
    """Pixels within about 2 px of a label change, as float32 0/1 (H, W).

    As the official ``get_binary_boundary``: a 5x5 mean filter (``cv2.filter2D``, default
    border ``BORDER_REFLECT_101``) of the trainId map *including* 255, and a boundary wherever
    the filtered value differs from the label by more than ``threshold``. Edges against the
    ignore region count as boundaries, on both sides.
    """
    values = label.astype(np.float32)
    filtered = cv2.filter2D(values, -1, _KERNEL)
    edges: np.ndarray = (np.abs(filtered - values) > threshold).astype(np.float32)
    return edges
