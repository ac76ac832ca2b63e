"""Evaluation-time prediction: whole image or sliding window, single or multi-scale, flip."""

from __future__ import annotations

from collections.abc import Sequence
import math

import torch
from torch import nn, Tensor
import torch.nn.functional as F

from segnode.config import MIN_SIDE

__all__ = ['predict_probs', 'window_starts']


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """Window offsets covering ``length``: every ``stride``, the last one flush with the end."""
    if length <= window:
        return [0]
    count = math.ceil((length - window) / stride) + 1
    return [min(i * stride, length - window) for i in range(count)]


def _forward_probs(model: nn.Module, x: Tensor) -> Tensor:
    """Softmax of one forward pass; inputs below 32 px are zero-padded and cropped back."""
    h, w = x.shape[-2:]
    pad_h, pad_w = max(MIN_SIDE - h, 0), max(MIN_SIDE - w, 0)
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h))
    return torch.softmax(model(x).float(), dim=1)[..., :h, :w]


def _sliding(
    model: nn.Module, x: Tensor, window: tuple[int, int], stride_ratio: float, num_classes: int
) -> Tensor:
    """Average softmax over overlapping windows.

    Images smaller than the window are padded with zeros (the mean colour after
    normalisation) and cropped back.
    """
    _, _, h, w = x.shape
    wh, ww = window
    pad_h, pad_w = max(wh - h, 0), max(ww - w, 0)
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h))
    ph, pw = x.shape[-2:]
    total = x.new_zeros((x.shape[0], num_classes, ph, pw), dtype=torch.float32)
    count = x.new_zeros((1, 1, ph, pw), dtype=torch.float32)
    sh, sw = max(1, math.ceil(wh * stride_ratio)), max(1, math.ceil(ww * stride_ratio))
    for y in window_starts(ph, wh, sh):
        for x0 in window_starts(pw, ww, sw):
            crop = x[:, :, y : y + wh, x0 : x0 + ww]
            total[:, :, y : y + wh, x0 : x0 + ww] += _forward_probs(model, crop)
            count[:, :, y : y + wh, x0 : x0 + ww] += 1
    return (total / count)[:, :, :h, :w]


@torch.no_grad()
def predict_probs(
    model: nn.Module,
    image: Tensor,
    num_classes: int,
    *,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    window: tuple[int, int] | None = None,
    stride_ratio: float = 2 / 3,
) -> Tensor:
    """Class probabilities (N, K, H, W) of a normalised batch (N, 3, H, W), eval-mode model.

    Softmax probabilities are summed over scales and flips (the official test engine sums
    exp(logits); softmax keeps every scale on the same footing and cannot overflow). Each scale
    resizes the image bilinearly; windows (when given) tile the resized image.
    """
    _, _, h, w = image.shape
    total = image.new_zeros((image.shape[0], num_classes, h, w), dtype=torch.float32)
    for scale in scales:
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        x = image if size == (h, w) else F.interpolate(image, size, mode='bilinear')
        views = [x, x.flip(-1)] if flip else [x]
        for k, view in enumerate(views):
            if window is None:
                probs = _forward_probs(model, view)
            else:
                probs = _sliding(model, view, window, stride_ratio, num_classes)
            if k == 1:
                probs = probs.flip(-1)
            if probs.shape[-2:] != (h, w):
                probs = F.interpolate(probs, (h, w), mode='bilinear')
            total += probs
    return total
