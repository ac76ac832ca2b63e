"""ASFM: adaptive score fusion with per-class sigmoid attention.

Structure: docs/model.md, "Heads and ASFM".
"""

from __future__ import annotations

from torch import nn, Tensor

__all__ = ['ASFM', 'AttentionBranch']


class AttentionBranch(nn.Sequential):
    """conv3x3 (no bias) -> BN -> ReLU -> Dropout(0.5) -> conv1x1 (no bias) -> sigmoid.

    Element-wise ``Dropout`` (not ``Dropout2d``) and no bias on the last conv, as in the
    official code (docs/model.md, "Official-code quirks": ASFM, biases); indices match its
    ``Sequential``.
    """

    def __init__(self, width: int, num_classes: int, hidden: int = 64) -> None:
        super().__init__(
            nn.Conv2d(width, hidden, 3, padding=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Conv2d(hidden, num_classes, 1, bias=False),
            nn.Sigmoid(),
        )


class ASFM(nn.Module):
    """Fuse per-scale class scores: sum_i s_i * a_i with a_i = sigmoid attention of F_i.

    No softmax across scales: each branch gates its own scores per class and pixel.
    """

    def __init__(self, width: int, num_classes: int, branches: int = 4) -> None:
        super().__init__()
        self.attentions = nn.ModuleList(
            AttentionBranch(width, num_classes) for _ in range(branches)
        )

    def forward(self, feats: list[Tensor], scores: list[Tensor]) -> Tensor:
        """Return the fused score map at the size of the inputs, (N, K, H/4, W/4)."""
        fused: Tensor = scores[0] * self.attentions[0](feats[0])
        for i in range(1, len(scores)):
            fused = fused + scores[i] * self.attentions[i](feats[i])
        return fused
