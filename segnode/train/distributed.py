"""torch.distributed set-up for torchrun launches (one process per GPU, any number of nodes).

``segnode train`` started directly is a single process; started with ``torchrun
--nproc_per_node G [--nnodes N ...]`` it reads RANK, WORLD_SIZE and LOCAL_RANK from the
environment and joins the process group (NCCL on CUDA, gloo on a CPU).
"""

from __future__ import annotations

from dataclasses import dataclass
import datetime
import os

import torch
import torch.distributed as dist

from segnode.config import resolve_device

__all__ = [
    'Context',
    'all_reduce_sum',
    'barrier',
    'init_distributed',
    'shutdown',
]


@dataclass(frozen=True)
class Context:
    """Where this process runs: rank, world size, local rank and device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device('cpu')

    @property
    def is_main(self) -> bool:
        """Rank 0 logs and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one process."""
        return self.world_size > 1


def init_distributed(device: str = 'auto', timeout_s: float = 1800.0) -> Context:
    """Join the torchrun process group when WORLD_SIZE > 1; pick this process's device."""
    world = int(os.environ.get('WORLD_SIZE', '1'))
    rank = int(os.environ.get('RANK', '0'))
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    dev = resolve_device(device, local_rank)
    if world > 1 and not dist.is_initialized():
        if dev.type == 'cuda':
            torch.cuda.set_device(dev)
        backend = 'nccl' if dev.type == 'cuda' else 'gloo'
        dist.init_process_group(
            backend,
            timeout=datetime.timedelta(seconds=timeout_s),
            device_id=dev if dev.type == 'cuda' else None,
        )
    return Context(rank, world, local_rank, dev)


def shutdown(ctx: Context) -> None:
    """Leave the process group (if this process joined one)."""
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: Context) -> None:
    """Wait for every rank (no-op in a single process)."""
    if ctx.distributed:
        dist.barrier()


def all_reduce_sum(ctx: Context, tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over ranks (returns a copy on the tensor's original device)."""
    if not ctx.distributed:
        return tensor
    work = tensor.to(ctx.device if dist.get_backend() == 'nccl' else 'cpu').clone()
    dist.all_reduce(work)
    return work.to(tensor.device)
