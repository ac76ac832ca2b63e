"""CamVid: the 11-class SegNet layout (360x480) and the 32-class colour-coded release (720x960).

SegNet layout: ``<root>/<split>/*.png`` with ``<root>/<split>annot/*.png`` (ids 0..10, 11 =
void, mapped to 255). Colour release: ``<root>/<split>/*.png`` with
``<root>/<split>_labels/*_L.png`` (the 32 colours of label_colors.txt), merged into the same 11
classes (``labels.CAMVID32_TO_CAMVID``); Void and unknown colours -> 255.
"""

from __future__ import annotations

from pathlib import Path

from segnode.data.dataset import check_pair_sizes, ColourDecoder, DatasetSpec, LutDecoder
from segnode.data.labels import CAMVID, CAMVID32_COLOURS, CAMVID32_TO_CAMVID, lookup_table
from segnode.data.scan import images_in, pair_files, require_dir

__all__ = ['camvid32_decoder', 'scan_camvid', 'scan_camvid32']


def scan_camvid(root: Path, split: str, check_sizes: bool = True) -> DatasetSpec:
    """Pairs of the 11-class SegNet layout (``train``/``trainannot``, ``val``/``valannot``).

    Raises:
        DatasetError: Missing folders, no images, or images without labels.
    """
    root = require_dir(Path(root), 'CamVid root')
    image_dir = require_dir(root / split, f'CamVid image split {split!r}')
    label_dir = require_dir(root / f'{split}annot', f'CamVid label folder for split {split!r}')
    pairs = pair_files(images_in(image_dir), lambda p: label_dir / f'{p.stem}.png')
    if check_sizes:
        check_pair_sizes(pairs)
    decoder = LutDecoder(lookup_table({i: i for i in range(CAMVID.num_classes)}))
    return DatasetSpec('camvid', split, tuple(pairs), decoder, CAMVID)


def camvid32_decoder() -> ColourDecoder:
    """Decoder of the 32-class colour labels into the 11 SegNet classes."""
    merged = {name: k for k, names in CAMVID32_TO_CAMVID.items() for name in names}
    names = sorted(merged)
    return ColourDecoder(
        tuple(CAMVID32_COLOURS[n] for n in names), tuple(merged[n] for n in names)
    )


def scan_camvid32(root: Path, split: str, check_sizes: bool = True) -> DatasetSpec:
    """Pairs of the colour-coded 720x960 release (``<split>/`` and ``<split>_labels/*_L.png``).

    Raises:
        DatasetError: Missing folders, no images, or images without labels.
    """
    root = require_dir(Path(root), 'CamVid (32-class) root')
    image_dir = require_dir(root / split, f'CamVid image split {split!r}')
    label_dir = require_dir(root / f'{split}_labels', f'CamVid colour labels of split {split!r}')
    pairs = pair_files(images_in(image_dir), lambda p: label_dir / f'{p.stem}_L.png')
    if check_sizes:
        check_pair_sizes(pairs)
    return DatasetSpec('camvid32', split, tuple(pairs), camvid32_decoder(), CAMVID)
