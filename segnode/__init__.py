"""segnode: real-time semantic segmentation (MFARANet) for ROS 2 vehicles.

The core (model, data, engine, node, replay, train, cli) imports without ROS 2;
``segnode.ros`` is the thin rclpy adapter. The layers and what each may import are in the
README ("Layout") and enforced by test/test_layout.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from segnode.version import __version__

if TYPE_CHECKING:
    from torch import nn

__all__ = ['__version__', 'load_model']


def load_model(path: str | Path, fold_equalizers: bool = False) -> nn.Module:
    """Load a segnode checkpoint as an eval-mode MFARANet.

    Args:
        path: A checkpoint written by segnode (``segnode convert-official`` or training).
        fold_equalizers: Fold the Scale Equalizers into the neighbouring layers (deployment).

    Returns:
        An eval-mode module whose forward takes normalised float NCHW RGB (ImageNet mean and
        std) and returns the logits (N, K, H, W) at input resolution as one tensor.
    """
    from segnode.model.checkpoint import load_model as _load

    return _load(path, fold_equalizers=fold_equalizers)
