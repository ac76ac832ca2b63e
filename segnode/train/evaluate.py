"""Evaluate a model on a dataset split: confusion matrix, per-class IoU and mIoU."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from segnode.config import resolve_device
from segnode.data.dataset import SegmentationDataset
from segnode.data.sources import scan_dataset, seen_in_training
from segnode.errors import SegnodeError
from segnode.metrics import confusion_matrix, ConfusionMatrix
from segnode.model.checkpoint import build_from_checkpoint
from segnode.train.config import EvalConfig
from segnode.train.distributed import all_reduce_sum, Context
from segnode.train.inference import predict_probs

__all__ = ['evaluate', 'evaluate_checkpoint']


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: SegmentationDataset,
    num_classes: int,
    device: torch.device,
    protocol: EvalConfig | None = None,
    *,
    ctx: Context | None = None,
    progress: bool = True,
    per_image: list[np.ndarray] | None = None,
) -> ConfusionMatrix:
    """Accumulate the confusion matrix of ``model`` (switched to eval mode) over ``dataset``.

    One image at a time at its own size, with the scales, flip and sliding window of
    ``protocol`` (default: single scale, whole image). With a distributed ``ctx`` every rank
    takes every ``world_size``-th image and the matrices are summed, so every rank gets the
    full result. ``per_image``, when given, gets each image's own K x K matrix appended, in
    dataset order (this rank's images only), for statistics over images
    (``segnode.metrics.paired_bootstrap``).
    """
    protocol = protocol or EvalConfig()
    window = (protocol.window[0], protocol.window[1]) if protocol.window else None
    ctx = ctx or Context(device=device)
    was_training = model.training
    model.eval()
    matrix = ConfusionMatrix(num_classes)
    indices = range(ctx.rank, len(dataset), ctx.world_size)
    bar = tqdm(
        indices,
        desc='eval',
        unit='img',
        disable=not (progress and ctx.is_main),
        dynamic_ncols=True,
        leave=False,
    )
    for index in bar:
        sample = dataset[index]
        image = sample['image'][None].to(device)
        probs = predict_probs(
            model,
            image,
            num_classes,
            scales=protocol.scales,
            flip=protocol.flip,
            window=window,
            stride_ratio=protocol.stride_ratio,
        )
        pred = probs.argmax(1)[0].cpu()
        matrix.update(pred, sample['label'])
        if per_image is not None:
            per_image.append(confusion_matrix(pred, sample['label'], num_classes))
        matrix.unknown_pixels += int(sample.get('unknown_labels', 0))  # mapped to ignore on load
        if ctx.is_main:
            bar.set_postfix(miou=f'{matrix.miou():.3f}')
    model.train(was_training)
    reduced = all_reduce_sum(ctx, torch.from_numpy(matrix.matrix))
    matrix.matrix = reduced.numpy().copy()
    matrix.unknown_pixels = int(all_reduce_sum(ctx, torch.tensor([matrix.unknown_pixels]))[0])
    return matrix


def evaluate_checkpoint(
    cfg: EvalConfig, progress: bool = True, per_image: list[np.ndarray] | None = None
) -> tuple[dict[str, Any], ConfusionMatrix]:
    """Evaluate ``cfg.checkpoint`` on ``cfg``'s split; the JSON summary and the matrix.

    ``per_image``: as for :func:`evaluate`.

    Raises:
        SegnodeError: Unreadable checkpoint or dataset, or class counts that differ.
    """
    spec = scan_dataset(cfg.dataset, cfg.data_root, cfg.split, cfg.classes)
    model, meta = build_from_checkpoint(cfg.checkpoint)
    k = model.config.num_classes
    if k != spec.table.num_classes:
        raise SegnodeError(
            f'{cfg.checkpoint} predicts {k} classes but {cfg.dataset} has {spec.table.num_classes}'
        )
    resize = (cfg.resize[0], cfg.resize[1]) if cfg.resize else None
    dataset = SegmentationDataset(spec, resize=resize, boundary=False, limit=cfg.limit)
    device = resolve_device(cfg.device)
    t0 = time.perf_counter()
    matrix = evaluate(
        model.to(device), dataset, k, device, cfg, progress=progress, per_image=per_image
    )
    summary = matrix.summary(list(meta['classes']['names']))
    summary.update(
        {
            'checkpoint': cfg.checkpoint,
            'dataset': cfg.dataset,
            'split': cfg.split,
            'images': len(dataset),
            'protocol': {
                'scales': list(cfg.scales),
                'flip': cfg.flip,
                'window': list(cfg.window) or None,
                'stride_ratio': cfg.stride_ratio,
                'resize': list(cfg.resize) or None,
            },
            'seconds': round(time.perf_counter() - t0, 2),
            'train_split': str((meta.get('recipe') or {}).get('train_split') or ''),
            'seen_in_training': seen_in_training(
                meta.get('recipe') or {}, cfg.data_root, [i for i, _ in spec.pairs[: len(dataset)]]
            ),
            'confusion_matrix': matrix.matrix.tolist(),
        }
    )
    return summary, matrix
