"""Cityscapes: ``leftImg8bit/<split>/<city>/*`` with ``gtFine`` labelTrainIds or labelIds."""

from __future__ import annotations

from pathlib import Path

from segnode.data.dataset import check_pair_sizes, DatasetSpec, LutDecoder
from segnode.data.labels import CITYSCAPES, CITYSCAPES_LABEL_TO_TRAIN, lookup_table
from segnode.data.scan import images_in, require_dir
from segnode.errors import DatasetError

__all__ = ['scan_cityscapes']

_IMAGE_SUFFIX = '_leftImg8bit.png'


def _label_path(gt_dir: Path, image: Path, kind: str) -> Path:
    stem = image.name[: -len(_IMAGE_SUFFIX)]
    return gt_dir / image.parent.name / f'{stem}_gtFine_{kind}.png'


def scan_cityscapes(root: Path, split: str, check_sizes: bool = True) -> DatasetSpec:
    """Find the image/label pairs of a Cityscapes split.

    Uses ``*_gtFine_labelTrainIds.png`` when every image has one (made by cityscapesScripts'
    ``createTrainIdLabelImgs``); otherwise ``*_gtFine_labelIds.png`` through the official
    labelId -> trainId table.

    Raises:
        DatasetError: Missing folders, no images, or images without labels.
    """
    root = require_dir(Path(root), 'Cityscapes root')
    image_dir = require_dir(root / 'leftImg8bit' / split, f'Cityscapes image split {split!r}')
    gt_dir = require_dir(root / 'gtFine' / split, f'Cityscapes gtFine split {split!r}')
    images = images_in(image_dir, f'*/*{_IMAGE_SUFFIX}')
    for kind, lut in (
        ('labelTrainIds', None),
        ('labelIds', lookup_table(CITYSCAPES_LABEL_TO_TRAIN)),
    ):
        pairs = [(image, _label_path(gt_dir, image, kind)) for image in images]
        if all(label.is_file() for _, label in pairs):
            if check_sizes:
                check_pair_sizes(pairs)
            return DatasetSpec('cityscapes', split, tuple(pairs), LutDecoder(lut), CITYSCAPES)
    example = _label_path(gt_dir, images[0], 'labelTrainIds')
    missing = sum(not _label_path(gt_dir, i, 'labelIds').is_file() for i in images)
    raise DatasetError(
        f'{missing} of {len(images)} Cityscapes images in {image_dir} have neither '
        f'*_gtFine_labelTrainIds.png nor *_gtFine_labelIds.png, e.g. {example}'
    )
