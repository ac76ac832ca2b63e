"""A resumable, seeded shard sampler (DistributedSampler semantics plus per-sample seeds)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

__all__ = ['ShardSampler', 'sample_seed']


def sample_seed(*key: int) -> int:
    """A 32-bit seed that is a pure function of ``key`` (seed, stream, epoch, index)."""
    return int(np.random.SeedSequence([int(k) & 0xFFFFFFFF for k in key]).generate_state(1)[0])


class ShardSampler(Sampler[tuple[int, int]]):
    """Yields ``(index, augmentation_seed)`` for this rank's shard of one epoch.

    Like ``DistributedSampler(drop_last=True)``: the permutation is ``randperm`` seeded with
    ``seed + epoch``, truncated to a multiple of the world size, and rank ``r`` takes every
    ``world_size``-th element from ``r``. In addition each sample carries a seed derived from
    (seed, stream, epoch, index), so augmentation is the same whichever worker loads it, and
    ``set_epoch(epoch, start)`` resumes in the middle of an epoch.

    Args:
        size: Dataset length.
        rank: This process's rank.
        world_size: Number of processes.
        seed: Run seed.
        stream: Separates independent uses (0 training, 1 equalizer statistics).
        shuffle: Permute (else dataset order).
        limit: Use only the first ``limit`` samples of the permutation (0: all).
    """

    def __init__(
        self,
        size: int,
        *,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        stream: int = 0,
        shuffle: bool = True,
        limit: int = 0,
    ) -> None:
        total = min(size, limit) if limit > 0 else size
        self.size = size
        self.per_rank = total // world_size
        self.rank, self.world_size = rank, world_size
        self.seed, self.stream, self.shuffle = seed, stream, shuffle
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch and the first position (in this rank's shard) to yield."""
        self.epoch, self.start = epoch, start

    def shard(self) -> list[int]:
        """This rank's dataset indices for the current epoch, in order."""
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.size, generator=g).tolist()
        else:
            order = list(range(self.size))
        order = order[: self.per_rank * self.world_size]
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for index in self.shard()[self.start :]:
            yield index, sample_seed(self.seed, self.stream, self.epoch, index)

    def __len__(self) -> int:
        return max(self.per_rank - self.start, 0)
