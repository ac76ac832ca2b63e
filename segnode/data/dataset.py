"""A segmentation dataset of (image, label) file pairs: decoding, augmentation, boundaries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from segnode.data.boundary import binary_boundary
from segnode.data.io import image_size, read_image, read_label, read_rgb_label
from segnode.data.labels import ClassTable, IGNORE_ID
from segnode.data.transforms import normalise, resize_pair, TrainAugment
from segnode.errors import DatasetError
from segnode.metrics import unknown_label_pixels

__all__ = [
    'ColourDecoder',
    'DatasetSpec',
    'LabelDecoder',
    'LutDecoder',
    'SampleKey',
    'SegmentationDataset',
    'check_pair_sizes',
    'index_seed',
]

SampleKey = int | tuple[int, int]  # index, or (index, augmentation seed)


class LabelDecoder(Protocol):
    """Reads a label file and returns its uint8 trainId map (255 = ignore)."""

    def __call__(self, path: Path) -> np.ndarray: ...


@dataclass(frozen=True)
class LutDecoder:
    """Single-channel id maps through a 256-entry lookup table (identity when None)."""

    lut: np.ndarray | None = None

    def __call__(self, path: Path) -> np.ndarray:
        """Decode one label file."""
        label = read_label(path)
        return label if self.lut is None else self.lut[label]


@dataclass(frozen=True)
class ColourDecoder:
    """Colour-coded label maps: RGB colour -> class id; unknown colours -> 255."""

    colours: tuple[tuple[int, int, int], ...]
    ids: tuple[int, ...]

    def __call__(self, path: Path) -> np.ndarray:
        """Decode one label file."""
        rgb = read_rgb_label(path).astype(np.int32)
        packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        keys = np.array([(r << 16) | (g << 8) | b for r, g, b in self.colours], dtype=np.int32)
        order = np.argsort(keys)
        keys, ids = keys[order], np.array(self.ids, dtype=np.uint8)[order]
        pos = np.clip(np.searchsorted(keys, packed), 0, len(keys) - 1)
        return np.where(keys[pos] == packed, ids[pos], IGNORE_ID).astype(np.uint8)


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset scanner found: file pairs, how to decode labels, the class table."""

    name: str
    split: str
    pairs: tuple[tuple[Path, Path], ...]
    decode: LabelDecoder
    table: ClassTable


def check_pair_sizes(pairs: Sequence[tuple[Path, Path]]) -> None:
    """Compare image and label sizes from PNG headers (other formats are checked on load).

    Raises:
        DatasetError: A label's size differs from its image's.
    """
    for image, label in pairs:
        a, b = image_size(image), image_size(label)
        if a is not None and b is not None and a != b:
            raise DatasetError(
                f'size mismatch: image {image} is {a[1]}x{a[0]} but label {label} is '
                f'{b[1]}x{b[0]} (W x H)'
            )


class SegmentationDataset(Dataset[dict[str, Tensor]]):
    """Samples ``{'image', 'label', 'boundary', 'index'}`` from a ``DatasetSpec``.

    Args:
        spec: File pairs and label decoding.
        augment: Training augmentation; None for evaluation (no randomness).
        resize: Resize every pair to (H, W) before anything else (e.g. CamVid 360x480 to
            720x960); None keeps the native size.
        boundary: Compute the boundary ground truth (on the loader workers).
        limit: Use only the first ``limit`` pairs (0: all).
    """

    def __init__(
        self,
        spec: DatasetSpec,
        *,
        augment: TrainAugment | None = None,
        resize: tuple[int, int] | None = None,
        boundary: bool = True,
        limit: int = 0,
    ) -> None:
        self.spec = spec
        self.pairs = spec.pairs[:limit] if limit > 0 else spec.pairs
        self.augment = augment
        self.resize = resize
        self.boundary = boundary

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The raw RGB uint8 image and uint8 trainId label of pair ``index``."""
        image_path, label_path = self.pairs[index]
        image, label = read_image(image_path), self.spec.decode(label_path)
        if image.shape[:2] != label.shape:
            raise DatasetError(
                f'size mismatch: image {image_path} is {image.shape[1]}x{image.shape[0]} but '
                f'label {label_path} is {label.shape[1]}x{label.shape[0]} (W x H)'
            )
        return image, label

    def __getitem__(self, key: SampleKey) -> dict[str, Tensor]:
        index, seed = key if isinstance(key, tuple) else (key, index_seed(key))
        image, label = self.load(index)
        k = self.spec.table.num_classes
        unknown = unknown_label_pixels(label, k)
        if unknown:  # ids no class has: scored and trained as ignore, and counted
            label = np.where(label >= k, IGNORE_ID, label).astype(np.uint8)
        if self.resize is not None:
            image, label = resize_pair(image, label, self.resize)
        if self.augment is not None:
            image, label = self.augment(image, label, np.random.default_rng(seed))
        sample = {
            'image': torch.from_numpy(normalise(image)),
            'label': torch.from_numpy(label.astype(np.int64)),
            'index': torch.tensor(index),
            'unknown_labels': torch.tensor(unknown),
        }
        if self.boundary:
            sample['boundary'] = torch.from_numpy(binary_boundary(label))[None]
        return sample


def index_seed(index: int) -> int:
    """The augmentation seed of a sample requested by index alone."""
    return int(np.random.SeedSequence([index]).generate_state(1)[0])
