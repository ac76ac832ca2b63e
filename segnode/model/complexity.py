"""Parameter and multiply-accumulate counts, with the official code's conventions.

MACs count convolutions (and linear layers) only: weight elements x output positions; BN,
interpolation and grid_sample are not counted (docs/model.md, "Counting conventions and MAC
shares"). The count runs on the ``meta`` device, so it costs no memory or time even at
1024x2048.
"""

from __future__ import annotations

import copy

import torch
from torch import nn, Tensor

__all__ = ['conv_macs', 'count_parameters']


def count_parameters(model: nn.Module, *, exclude: tuple[str, ...] = ('boundary_heads.',)) -> int:
    """Trainable parameter count, leaving out the training-only heads by default."""
    return sum(p.numel() for n, p in model.named_parameters() if not n.startswith(exclude))


def conv_macs(model: nn.Module, height: int, width: int, batch: int = 1) -> int:
    """Convolution and linear multiply-accumulates of one forward pass at ``height x width``."""
    meta = copy.deepcopy(model).to('meta').eval()
    total = 0

    def hook(module: nn.Module, _inputs: tuple[Tensor, ...], output: Tensor) -> None:
        nonlocal total
        positions = output.numel() // output.shape[1] if output.dim() > 2 else output.shape[0]
        weight = module.weight
        assert isinstance(weight, Tensor)
        total += weight.numel() * positions

    for module in meta.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            module.register_forward_hook(hook)
    with torch.no_grad():
        meta(torch.empty(batch, 3, height, width, device='meta'))
    return total
