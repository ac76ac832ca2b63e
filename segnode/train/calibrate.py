"""Scale Equalizer calibration as a training stage (scale-equalizer.md §4).

Training batches through the training augmentation, seeded by the run seed on their own stream
(the same batches in every pass), at the per-GPU batch size; under DDP each rank calibrates on
its shard and the statistics are merged exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch import nn, Tensor

from segnode.data.dataset import SegmentationDataset
from segnode.errors import ConfigError
from segnode.model.calibration import calibrate_equalizers
from segnode.train.config import TrainConfig
from segnode.train.distributed import Context
from segnode.train.loader import make_loader
from segnode.train.sampler import ShardSampler

__all__ = ['CALIBRATION_STREAM', 'calibrate_for_training']

CALIBRATION_STREAM = 1


def calibrate_for_training(
    model: nn.Module, dataset: SegmentationDataset, cfg: TrainConfig, ctx: Context
) -> dict[str, Any]:
    """Calibrate every equalizer of ``model`` on augmented training batches; the provenance.

    Raises:
        ConfigError: Too few images for one batch per rank.
    """
    sampler = ShardSampler(
        len(dataset),
        rank=ctx.rank,
        world_size=ctx.world_size,
        seed=cfg.seed,
        stream=CALIBRATION_STREAM,
        limit=cfg.calibration_images,
    )
    loader = make_loader(dataset, sampler, cfg.batch_size, cfg.workers, cfg.seed)
    if len(loader) == 0:
        raise ConfigError(
            f'calibration needs at least {cfg.batch_size * ctx.world_size} images '
            f'(batch_size x world size), got {sampler.per_rank * ctx.world_size}'
        )

    def batches() -> Iterator[Tensor]:
        sampler.set_epoch(0)
        return (batch['image'] for batch in loader)

    description = {
        'dataset': cfg.dataset,
        'split': cfg.train_split,
        'images': len(loader) * cfg.batch_size * ctx.world_size,
        'batch_size_per_gpu': cfg.batch_size,
        'world_size': ctx.world_size,
        'augmentation': f'training (crop {list(cfg.crop)}, scale {list(cfg.scale_range)}, '
        f'rotate {cfg.rotate} p {cfg.rotate_prob}, flip {cfg.flip})',
        'seed': cfg.seed,
    }
    return calibrate_equalizers(model, batches, description=description)
