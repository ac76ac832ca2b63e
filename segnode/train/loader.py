"""Datasets and data loaders of a training run."""

from __future__ import annotations

from dataclasses import dataclass
import signal

import cv2
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from segnode.data.dataset import SegmentationDataset
from segnode.data.labels import ClassTable
from segnode.data.sources import scan_dataset
from segnode.data.transforms import TrainAugment
from segnode.errors import ConfigError
from segnode.train.config import TrainConfig
from segnode.train.sampler import ShardSampler

__all__ = ['Datasets', 'make_loader', 'open_datasets']


@dataclass(frozen=True)
class Datasets:
    """The training set (augmented, with boundaries), the validation set (or None), classes."""

    train: SegmentationDataset
    val: SegmentationDataset | None
    table: ClassTable


def _pair(value: tuple[int, ...]) -> tuple[int, int] | None:
    return (value[0], value[1]) if value else None


def open_datasets(cfg: TrainConfig, with_val: bool = True) -> Datasets:
    """Scan the training (and validation) split of ``cfg`` and wrap them in datasets.

    Raises:
        DatasetError: Missing or inconsistent files.
    """
    spec = scan_dataset(cfg.dataset, cfg.data_root, cfg.train_split, cfg.classes)
    names = spec.table.names
    if unknown := [c for c in cfg.rare_classes if c not in names]:
        raise ConfigError(
            f'rare_classes: no class {", ".join(unknown)} in {cfg.dataset} '
            f'(classes: {", ".join(names)})'
        )
    augment = TrainAugment(
        crop=(cfg.crop[0], cfg.crop[1]),
        scale=(cfg.scale_range[0], cfg.scale_range[1]),
        rotate=cfg.rotate,
        rotate_prob=cfg.rotate_prob,
        flip=cfg.flip,
        rare_ids=tuple(names.index(c) for c in cfg.rare_classes),
        rare_crop_prob=cfg.rare_crop_prob,
        photometric=cfg.photometric,
    )
    train = SegmentationDataset(
        spec, augment=augment, resize=_pair(cfg.resize), limit=cfg.train_limit
    )
    val = None
    if with_val and cfg.val_split and cfg.val_every >= 0:
        val_spec = scan_dataset(cfg.dataset, cfg.data_root, cfg.val_split, cfg.classes)
        val = SegmentationDataset(
            val_spec, resize=_pair(cfg.resize), boundary=False, limit=cfg.val_limit
        )
    return Datasets(train, val, spec.table)


def _init_worker(worker_id: int) -> None:
    """One torch thread per loader worker; Ctrl-C is the main process's (train/interrupt.py)."""
    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def make_loader(
    dataset: SegmentationDataset, sampler: ShardSampler, batch_size: int, workers: int, seed: int
) -> DataLoader[dict[str, Tensor]]:
    """A loader over ``sampler`` that never touches the global torch RNG.

    Augmentation seeds come from the sampler; the loader's own base seed comes from a private
    generator, so creating an iterator (every epoch, or on resume) does not shift dropout.
    With workers, OpenCV's thread pool is switched off first: a forked worker that inherits a
    running pool deadlocks in its first cv2 call (the workers already run in parallel).
    """
    if workers:
        cv2.setNumThreads(0)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        drop_last=True,
        pin_memory=torch.cuda.is_available(),
        worker_init_fn=_init_worker if workers else None,
        generator=torch.Generator().manual_seed(seed),
    )
