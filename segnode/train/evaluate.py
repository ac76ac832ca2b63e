"""Evaluate a model on a dataset split: confusion matrix, per-class IoU and mIoU."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from segnode.data.dataset import SegmentationDataset
from segnode.metrics import ConfusionMatrix
from segnode.train.distributed import all_reduce_sum, Context
from segnode.train.inference import predict_probs

__all__ = ['EvalOptions', 'evaluate']


@dataclass(frozen=True)
class EvalOptions:
    """Inference protocol: scales, flip and sliding window (None: whole image)."""

    scales: Sequence[float] = (1.0,)
    flip: bool = False
    window: tuple[int, int] | None = None
    stride_ratio: float = 2 / 3


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: SegmentationDataset,
    num_classes: int,
    device: torch.device,
    options: EvalOptions = EvalOptions(),
    *,
    ctx: Context | None = None,
    progress: bool = True,
) -> ConfusionMatrix:
    """Accumulate the confusion matrix of ``model`` (switched to eval mode) over ``dataset``.

    One image at a time at its own size. With a distributed ``ctx`` every rank takes every
    ``world_size``-th image and the matrices are summed, so every rank gets the full result.
    """
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
            scales=options.scales,
            flip=options.flip,
            window=options.window,
            stride_ratio=options.stride_ratio,
        )
        matrix.update(probs.argmax(1)[0].cpu(), sample['label'])
        if ctx.is_main:
            bar.set_postfix(miou=f'{matrix.miou():.3f}')
    model.train(was_training)
    reduced = all_reduce_sum(ctx, torch.from_numpy(matrix.matrix))
    matrix.matrix = reduced.numpy().copy()
    return matrix
