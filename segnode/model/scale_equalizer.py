"""Scale Equalizers (Kim & Kim, arXiv 2402.01149) and their streaming statistics.

A scale equalizer is a frozen affine map x -> (x - mu) / sigma on one input of a multi-level
fusion, with dataset-wide constants measured once at initialisation, so that every fusion input
is zero-mean and unit-variance (bilinear resizing keeps the mean but shrinks the variance).
It has no parameters; ``segnode.model.fold`` removes it for deployment.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn, Tensor
import torch.distributed as dist

__all__ = ['RunningMoments', 'ScaleEqualizer']


@dataclass
class RunningMoments:
    """Exact streaming mean and variance in float64 (Chan et al. parallel merge).

    Per-channel when ``channels`` is given (statistics over every dimension but dim 1),
    otherwise one scalar over every element.
    """

    count: Tensor
    mean: Tensor
    m2: Tensor

    @classmethod
    def empty(cls, channels: int | None = None) -> RunningMoments:
        """Moments of no data yet."""
        shape = () if channels is None else (channels,)
        zeros = torch.zeros(shape, dtype=torch.float64)
        return cls(zeros.clone(), zeros.clone(), zeros.clone())

    @classmethod
    def of(cls, x: Tensor, per_channel: bool = False) -> RunningMoments:
        """Moments of one tensor, computed in float64 with a two-pass formula."""
        x = x.detach().to(torch.float64)
        if per_channel:
            x = x.transpose(0, 1).reshape(x.shape[1], -1)
            count = torch.full((x.shape[0],), float(x.shape[1]), dtype=torch.float64)
            mean = x.mean(dim=1)
            m2 = ((x - mean[:, None]) ** 2).sum(dim=1)
        else:
            count = torch.tensor(float(x.numel()), dtype=torch.float64)
            mean = x.mean()
            m2 = ((x - mean) ** 2).sum()
        return cls(count.cpu(), mean.cpu(), m2.cpu())

    def merge(self, other: RunningMoments) -> RunningMoments:
        """Combine two disjoint sets of observations exactly."""
        count = self.count + other.count
        safe = torch.where(count > 0, count, torch.ones_like(count))
        delta = other.mean - self.mean
        mean = self.mean + delta * other.count / safe
        m2 = self.m2 + other.m2 + delta**2 * self.count * other.count / safe
        return RunningMoments(count, mean, m2)

    def all_reduce(self) -> RunningMoments:
        """Merge the moments of every torch.distributed rank (identity when not distributed)."""
        if not (dist.is_available() and dist.is_initialized()):
            return self
        packed = torch.stack([self.count, self.mean, self.m2])
        backend_device = 'cuda' if dist.get_backend() == 'nccl' else 'cpu'
        packed = packed.to(backend_device)
        gathered = [torch.empty_like(packed) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, packed)
        total = RunningMoments.empty(None if self.count.dim() == 0 else self.count.shape[0])
        for rank_stats in gathered:  # rank order: every rank computes the same result
            stats = rank_stats.cpu()
            total = total.merge(RunningMoments(stats[0], stats[1], stats[2]))
        return total

    @property
    def std(self) -> Tensor:
        """Population standard deviation, sqrt(M2 / n)."""
        return torch.sqrt(self.m2 / self.count)


class ScaleEqualizer(nn.Module):
    """Frozen (x - mean) / std with buffer constants; identity until measured.

    Args:
        channels: Number of channels for per-channel constants; None for one scalar pair.
        depth: Measuring level: an equalizer whose input depends on other equalizers is
            measured after them (MFARANet uses levels 0 to 3).
    """

    def __init__(self, channels: int | None = None, depth: int = 0) -> None:
        super().__init__()
        shape = () if channels is None else (channels,)
        self.register_buffer('mean', torch.zeros(shape))
        self.register_buffer('std', torch.ones(shape))
        self.depth = depth
        self.moments: RunningMoments | None = None  # set while measuring

    mean: Tensor
    std: Tensor

    @property
    def per_channel(self) -> bool:
        """Whether the constants are per channel."""
        return self.mean.dim() == 1

    def start_recording(self) -> None:
        """Accumulate statistics of every input seen from now on."""
        channels = self.mean.shape[0] if self.per_channel else None
        self.moments = RunningMoments.empty(channels)

    def finish_recording(self, eps: float = 1e-6) -> RunningMoments:
        """Stop recording, merge across ranks and freeze the constants.

        Raises:
            ValueError: No input was recorded, or the input is dead (sigma too small).
        """
        if self.moments is None or bool((self.moments.count == 0).any()):
            raise ValueError('scale equalizer saw no input while measuring')
        moments = self.moments.all_reduce()
        self.moments = None
        mean, std = moments.mean, moments.std
        floor = eps * (1.0 + mean.abs())
        if not bool(torch.isfinite(std).all()):
            raise ValueError(f'scale equalizer statistics are not finite: std={std.tolist()}')
        if self.per_channel:
            std = torch.maximum(std, floor)
        elif bool(std <= floor):
            raise ValueError(
                f'dead scale equalizer input: std {float(std):.3g} <= {float(floor):.3g}'
            )
        self.mean.copy_(mean.to(self.mean.dtype))
        self.std.copy_(std.to(self.std.dtype))
        return moments

    def forward(self, x: Tensor) -> Tensor:
        """Return (x - mean) / std, in the dtype of ``x``."""
        if self.moments is not None:
            self.moments = self.moments.merge(RunningMoments.of(x, self.per_channel))
        mean, std = self.mean, self.std
        if self.per_channel:
            mean = mean.view(1, -1, 1, 1).to(x.dtype)
            std = std.view(1, -1, 1, 1).to(x.dtype)
        return (x - mean) / std

    def extra_repr(self) -> str:
        """Show the constants (scalar case) in ``print(model)``."""
        if self.per_channel:
            return f'channels={self.mean.shape[0]}, depth={self.depth}'
        return f'mean={float(self.mean):.4g}, std={float(self.std):.4g}, depth={self.depth}'
