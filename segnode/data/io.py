"""Reading images and label maps, with errors that name the file."""

from __future__ import annotations

from pathlib import Path
import struct

import cv2
import numpy as np

from segnode.errors import DatasetError

__all__ = ['IMAGE_SUFFIXES', 'image_size', 'read_image', 'read_label', 'read_rgb_label']

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')
_PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


def image_size(path: Path) -> tuple[int, int] | None:
    """(H, W) of a PNG from its header without decoding it; None for other formats."""
    try:
        with path.open('rb') as f:
            head = f.read(24)
    except OSError as err:
        raise DatasetError(f'cannot read {path}: {err}') from err
    if len(head) < 24 or not head.startswith(_PNG_MAGIC) or head[12:16] != b'IHDR':
        return None
    width, height = struct.unpack('>II', head[16:24])
    return int(height), int(width)


def read_image(path: Path) -> np.ndarray:
    """An RGB uint8 image (H, W, 3)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f'cannot read image {path} (missing, truncated or not an image)')
    return np.ascontiguousarray(image[:, :, ::-1])


def read_label(path: Path) -> np.ndarray:
    """A single-channel 8-bit label map (H, W), values unchanged."""
    label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if label is None:
        raise DatasetError(f'cannot read label map {path}')
    if label.ndim != 2:
        raise DatasetError(
            f'label map {path} has {label.shape[2]} channels; expected a single-channel '
            'id map (is it a colour-coded label? use the matching colour dataset)'
        )
    if label.dtype != np.uint8:
        if label.max(initial=0) > 255:
            raise DatasetError(f'label map {path} has values above 255 ({label.dtype})')
        label = label.astype(np.uint8)
    return label


def read_rgb_label(path: Path) -> np.ndarray:
    """A colour-coded label map as RGB uint8 (H, W, 3)."""
    label = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if label is None:
        raise DatasetError(f'cannot read label map {path}')
    return np.ascontiguousarray(label[:, :, ::-1])
