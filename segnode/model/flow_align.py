"""RAM: recursive flow alignment of the four MFAM outputs to stride 4 (docs/model.md, "RAM").

Three flow predictors, one per adjacent pair of levels, are all evaluated on the un-warped
features first; each coarse level is then warped one level at a time with the flows of the
levels below it (six ``grid_sample`` calls in all). Reusing the adjacent-pair flows is the
"recursive" part of the paper.
"""

from __future__ import annotations

import torch
from torch import nn, Tensor
import torch.nn.functional as F

from segnode.model.layers import resize_to

__all__ = ['FlowPredictor', 'RecursiveAlignment', 'sampling_grid']


def sampling_grid(flow: Tensor) -> Tensor:
    """Turn a pixel flow (N, 2, h, w) into a ``grid_sample`` grid (N, h, w, 2).

    The base grid follows the align_corners=True convention (-1 and +1 at the centres of the
    corner pixels, x first). As in the official code (inherited from SFNet) the flow is
    divided by (w, h), not by (w - 1) / 2 as the paper's Eq. 2 would suggest (docs/model.md,
    "Official-code quirks": flow normalisation).

    The grid is built from ``arange`` on the flow's device and dtype and the map's symbolic
    sizes, never from ``linspace`` or a tensor made of shapes: that is what lets the graph
    export with dynamic height and width. Needs h, w >= 2.
    """
    n, _, h, w = flow.shape
    # index * 2 / (n - 1) - 1, kept tensor-side: a Python float of a symbolic size would add
    # sym_float nodes that Torch-TensorRT cannot convert
    xs = torch.arange(w, device=flow.device, dtype=flow.dtype) * 2 / (w - 1) - 1
    ys = torch.arange(h, device=flow.device, dtype=flow.dtype) * 2 / (h - 1) - 1
    base = torch.stack((xs.view(1, 1, w).expand(n, h, w), ys.view(1, h, 1).expand(n, h, w)), 3)
    return base + torch.stack((flow[:, 0] / w, flow[:, 1] / h), dim=3)


def warp(x: Tensor, grid: Tensor) -> Tensor:
    """Sample ``x`` at ``grid`` (bilinear, zero padding, align_corners=True).

    Sampling runs in the grid's dtype: a reduced-precision engine keeps its grids fp32 and
    its features bf16 or fp16 (docs/engine.md, "Mixed precision"); in training both are fp32
    and the cast is a no-op.
    """
    x = x.to(grid.dtype)
    return F.grid_sample(x, grid, mode='bilinear', padding_mode='zeros', align_corners=True)


class FlowPredictor(nn.Module):
    """Predict the flow that aligns a coarse map to the next finer one.

    flow = conv3x3(cat[conv1x1(fine), up(conv1x1(coarse))]), no biases, no BN (docs/model.md,
    "Official-code quirks": flow predictor).
    """

    def __init__(self, width: int = 128) -> None:
        super().__init__()
        self.coarse_proj = nn.Conv2d(width, width // 2, 1, bias=False)
        self.fine_proj = nn.Conv2d(width, width // 2, 1, bias=False)
        self.flow = nn.Conv2d(width, 2, 3, padding=1, bias=False)

    def forward(self, fine: Tensor, coarse: Tensor) -> Tensor:
        """Return the sampling grid at the fine map's size, (N, h, w, 2)."""
        coarse = resize_to(self.coarse_proj(coarse), fine)
        return sampling_grid(self.flow(torch.cat([self.fine_proj(fine), coarse], dim=1)))


class RecursiveAlignment(nn.Module):
    """Align [F1, F2, F3, F4] (strides 4..32) to stride 4 with three flow predictors."""

    def __init__(self, width: int = 128, levels: int = 4) -> None:
        super().__init__()
        self.flows = nn.ModuleList(FlowPredictor(width) for _ in range(levels - 1))

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        """Return the features warped to the size of ``feats[0]`` (F1 is returned as is).

        Fewer levels than predictors (the pruned variant passes [F1, F2]) use the first ones.
        """
        grids = [self.flows[i](feats[i], feats[i + 1]) for i in range(len(feats) - 1)]
        aligned = [feats[0]]
        for level in range(1, len(feats)):
            x = feats[level]
            for grid in reversed(grids[:level]):  # e.g. F4: grid2 (to /16), grid1, grid0
                x = warp(x, grid)
            aligned.append(x)
        return aligned
