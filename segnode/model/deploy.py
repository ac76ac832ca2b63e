"""The deployment graph: uint8 camera frames in, uint8 label masks (or logits) out.

Normalisation, the optional resize to a fixed network size, the model, the upsample and the
argmax all live in one module, so an exported or compiled engine holds the whole device-side
path and the host only moves uint8 (docs/engine.md, "The frame path"). The parity gate builds
the same graph with ``logits=True``: the same normalisation and resizes, stopping before the
argmax.

With ``confidence=True`` the graph has a second output, the winning class's softmax
probability scaled to 0..255 (mono8), computed from the same logits in the graph, so no logits
leave the device either; without it the graph is exactly the mask graph.
"""

from __future__ import annotations

import copy as _copy

import torch
from torch import nn, Tensor
import torch.nn.functional as F

from segnode.config import IMAGENET_MEAN, IMAGENET_STD
from segnode.model.mfaranet import MFARANet

__all__ = ['FrameToMask', 'confidence_levels']


class FrameToMask(nn.Module):
    """Wrap a (folded) MFARANet: (N, H, W, 3) uint8 frames -> (N, H, W) uint8 class ids.

    With ``logits=True`` the graph returns the (N, K, H, W) logits at frame resolution instead
    (the parity gate compares them). With ``confidence=True`` it returns ``(masks,
    confidences)``: the confidence is ``round(255 * max_k softmax(logits)_k)`` per pixel, of
    ``mask_dtype`` too (:func:`confidence_levels`).

    Args:
        model: The network (normalised float RGB in, logits at input size out).
        bgr: Frames are BGR. The first convolution's input channels are swapped instead of the
            frame, which costs nothing at run time.
        input_size: Optional fixed network input (h, w): frames are resized to it inside the
            graph and the logits resized back, so masks are always at frame resolution.
        mask_dtype: uint8 (default) or int32. Torch-TensorRT 2.13 has no converter for a cast
            to uint8 (its ``_to_copy`` validator), so a TensorRT engine ends in int32 and the
            engine layer casts to uint8 on the device.
        logits: Return logits instead of class ids.
        confidence: Also return the confidence image (off: the graph is the mask graph alone).
        copy: Wrap a private copy of ``model`` (default); False wraps ``model`` itself, for a
            caller that made a copy of its own (the engine builder's deployment copy).
    """

    def __init__(
        self,
        model: MFARANet,
        *,
        bgr: bool = False,
        input_size: tuple[int, int] | None = None,
        mask_dtype: torch.dtype = torch.uint8,
        logits: bool = False,
        confidence: bool = False,
        copy: bool = True,
    ) -> None:
        super().__init__()
        self.model = (_copy.deepcopy(model) if copy else model).eval()
        mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        if bgr:
            stem = self.model.backbone.layer0[0]
            assert isinstance(stem, nn.Sequential)
            first = stem[0]
            assert isinstance(first, nn.Conv2d)
            with torch.no_grad():
                first.weight.copy_(first.weight.flip(1))
            mean, std = mean.flip(0), std.flip(0)
        self.register_buffer('mean', (mean * 255).view(1, 3, 1, 1))
        self.register_buffer('std', (std * 255).view(1, 3, 1, 1))
        if mask_dtype not in (torch.uint8, torch.int32):
            raise ValueError(f'mask_dtype must be torch.uint8 or torch.int32, got {mask_dtype}')
        self.bgr = bgr
        self.input_size = input_size
        self.mask_dtype = mask_dtype
        self.logits = logits
        self.confidence = confidence and not logits

    mean: Tensor
    std: Tensor

    def forward(self, frames: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        """Segment a uint8 batch (N, H, W, 3): masks (N, H, W) of ``mask_dtype``, or logits.

        With ``confidence``: ``(masks, confidences)``, both (N, H, W) of ``mask_dtype``.
        """
        x = frames.permute(0, 3, 1, 2).to(self.mean.dtype)
        x = (x - self.mean) / self.std  # (N, 3, H, W)
        if self.input_size is not None:
            size = frames.shape[1:3]
            x = F.interpolate(x, size=self.input_size, mode='bilinear', align_corners=False)
            logits = F.interpolate(self.model(x), size=size, mode='bilinear', align_corners=True)
        else:
            logits = self.model(x)
        if self.logits:
            return logits
        masks = logits.argmax(dim=1).to(self.mask_dtype)
        if not self.confidence:
            return masks
        return masks, confidence_levels(logits).to(self.mask_dtype)


def confidence_levels(logits: Tensor) -> Tensor:
    """``round(255 * max_k softmax(logits)_k)`` over dim 1, as float (N, H, W) in 0..255.

    The winning probability is ``1 / sum_k exp(l_k - max_k l_k)``: one max, one exp and one
    sum over the classes, without forming the softmax. It is at least ``1/K``, so the clamp
    only guards the rounding.
    """
    top = logits.amax(dim=1, keepdim=True)
    probability = 1.0 / torch.exp(logits - top).sum(dim=1)
    return torch.round(probability * 255.0).clamp(0.0, 255.0)
