"""Per-scale 1x1 heads: class scores (inference) and boundary logits (training only)."""

from __future__ import annotations

from torch import nn

__all__ = ['boundary_heads', 'score_heads']


def score_heads(width: int, num_classes: int, branches: int = 4) -> nn.ModuleList:
    """One 1x1 conv with bias per scale, 128 -> K (the biases quirk of docs/model.md)."""
    return nn.ModuleList(nn.Conv2d(width, num_classes, 1) for _ in range(branches))


def boundary_heads(width: int, branches: int = 4) -> nn.ModuleList:
    """One 1x1 conv with bias per scale, 128 -> 1: the boundary logits of the MJS loss."""
    return nn.ModuleList(nn.Conv2d(width, 1, 1) for _ in range(branches))
