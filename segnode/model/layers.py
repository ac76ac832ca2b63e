"""Small building blocks shared by the MFARANet decoder."""

from __future__ import annotations

from torch import nn, Tensor
import torch.nn.functional as F

__all__ = ['ConvBNReLU', 'resize_to']


class ConvBNReLU(nn.Sequential):
    """Conv (no bias) -> BN -> ReLU: CBR1 for k=1, CBR3 (zero padding 1) for k=3.

    Indices 0, 1, 2 match the official ``Sequential`` so checkpoint keys map one to one.
    """

    def __init__(self, cin: int, cout: int, kernel_size: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel_size, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


def resize_to(x: Tensor, like: Tensor) -> Tensor:
    """Bilinear resize of ``x`` to the spatial size of ``like``, with align_corners=True.

    As every resize of the official code (docs/model.md, "Official-code quirks": align_corners).
    """
    return F.interpolate(x, size=like.shape[-2:], mode='bilinear', align_corners=True)
