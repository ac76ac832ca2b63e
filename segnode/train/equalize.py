"""Measuring the Scale Equalizer statistics as a training stage (docs/model.md).

Training batches through the training augmentation, seeded by the run seed on their own stream
(the same batches in every pass), at the per-GPU batch size; under DDP each rank measures on
its shard and the statistics are merged exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
import time
from typing import Any

from torch import nn, Tensor

from segnode.data.dataset import SegmentationDataset
from segnode.errors import ConfigError, SegnodeError
from segnode.model.checkpoint import build_from_checkpoint, read_checkpoint, save_checkpoint
from segnode.model.equalizer_stats import measure_equalizers
from segnode.model.mfaranet import MFARANet
from segnode.train.build import build_training_model
from segnode.train.config import TrainConfig
from segnode.train.distributed import Context, init_distributed, shutdown
from segnode.train.loader import make_loader, open_datasets
from segnode.train.sampler import ShardSampler

__all__ = ['EQUALIZER_STREAM', 'equalize_checkpoint', 'measure_for_training']

EQUALIZER_STREAM = 1


def measure_for_training(
    model: nn.Module, dataset: SegmentationDataset, cfg: TrainConfig, ctx: Context
) -> dict[str, Any]:
    """Measure every equalizer of ``model`` on augmented training batches; the provenance.

    Raises:
        ConfigError: Too few images for one batch per rank.
    """
    sampler = ShardSampler(
        len(dataset),
        rank=ctx.rank,
        world_size=ctx.world_size,
        seed=cfg.seed,
        stream=EQUALIZER_STREAM,
        limit=cfg.equalizer_images,
    )
    loader = make_loader(dataset, sampler, cfg.batch_size, cfg.workers, cfg.seed)
    if len(loader) == 0:
        raise ConfigError(
            f'measuring the equalizers needs at least {cfg.batch_size * ctx.world_size} images '
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
    return measure_equalizers(model, batches, description=description)


def _model_to_measure(
    checkpoint: str | None, cfg: TrainConfig, num_classes: int
) -> tuple[MFARANet, str]:
    if not checkpoint:
        return build_training_model(cfg, num_classes), 'segnode equalize (new model)'
    _, meta = read_checkpoint(checkpoint)
    heads = bool(meta.get('model', {}).get('boundary_heads', False))
    model, meta = build_from_checkpoint(checkpoint, num_classes=num_classes, boundary_heads=heads)
    if not model.config.equalizers:
        raise SegnodeError(f'{checkpoint} was built without scale equalizers')
    return model, f'{meta.get("source") or checkpoint}; equalizers measured by segnode equalize'


def equalize_checkpoint(
    cfg: TrainConfig, out: str, checkpoint: str | None = None
) -> tuple[dict[str, Any], float]:
    """Measure the equalizers of a new model (or ``checkpoint``) on ``cfg``'s training batches.

    Saves the model to ``out``. Runs under torchrun as well (each rank measures on its shard;
    rank 0 writes).

    Returns:
        The equalizer provenance and the seconds measuring took.
    """
    ctx = init_distributed(cfg.device)
    try:
        data = open_datasets(cfg, with_val=False)
        model, source = _model_to_measure(checkpoint, cfg, data.table.num_classes)
        model.to(ctx.device)
        t0 = time.perf_counter()
        provenance = measure_for_training(model, data.train, cfg, ctx)
        seconds = time.perf_counter() - t0
        if ctx.is_main:
            save_checkpoint(
                model.cpu(),
                out,
                class_names=data.table.names,
                palette=data.table.palette,
                dataset=data.table.dataset,
                source=source,
            )
    finally:
        shutdown(ctx)
    return provenance, seconds
