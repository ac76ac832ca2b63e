"""CamVid: the 11-class SegNet layout (360x480) and the 32-class colour-coded release (720x960).

SegNet layout: ``<root>/<split>/*.png`` with ``<root>/<split>annot/*.png`` (ids 0..10, 11 =
void, mapped to 255). Colour release: ``<root>/<split>/*.png`` with
``<root>/<split>_labels/*_L.png`` (the 32 colours of label_colors.txt), merged into the same 11
classes (``labels.CAMVID32_TO_CAMVID``); Void and unknown colours -> 255.

Besides its folders, the SegNet layout has named splits made of them (:data:`NAMED_SPLITS`):
``trainval`` (the standard protocol's training set, all 468 frames), and a cross-sequence pair
that holds out one whole drive: ``xseq-train`` is ``train`` without sequence
:data:`HOLDOUT_SEQUENCE` and ``xseq-val`` its 101 frames, a figure of streets the model never
saw (``val`` is sequence 0016E5, whose 204 other frames are in ``train``). A frame's sequence is
its file-name prefix (``0006R0_f02340.png``).
"""

from __future__ import annotations

from collections.abc import Callable
import functools
from pathlib import Path

from segnode.data.dataset import check_pair_sizes, ColourDecoder, DatasetSpec, LutDecoder
from segnode.data.labels import CAMVID, CAMVID32_COLOURS, CAMVID32_TO_CAMVID, lookup_table
from segnode.data.scan import images_in, pair_files, require_dir
from segnode.errors import DatasetError

__all__ = [
    'HOLDOUT_SEQUENCE',
    'NAMED_SPLITS',
    'camvid32_decoder',
    'scan_camvid',
    'scan_camvid32',
    'sequence_of',
]


def _every_sequence(sequence: str) -> bool:
    return True


def _label_of(label_dir: Path, image: Path) -> Path:
    return label_dir / f'{image.stem}.png'


HOLDOUT_SEQUENCE = '0006R0'
# name -> (folder, keep a frame of this sequence?) for each folder the split draws from
NAMED_SPLITS: dict[str, tuple[tuple[str, Callable[[str], bool]], ...]] = {
    'trainval': (('train', _every_sequence), ('val', _every_sequence)),
    'xseq-train': (('train', lambda seq: seq != HOLDOUT_SEQUENCE),),
    'xseq-val': (('train', lambda seq: seq == HOLDOUT_SEQUENCE),),
}


def sequence_of(path: Path) -> str:
    """The drive of a CamVid frame: its file-name prefix (``0006R0`` of ``0006R0_f02340``)."""
    return path.stem.split('_', 1)[0]


def scan_camvid(root: Path, split: str, check_sizes: bool = True) -> DatasetSpec:
    """Pairs of the 11-class SegNet layout (``train``/``trainannot``, ``val``/``valannot``).

    ``split`` is a folder (``train``, ``val``, ``test``) or one of :data:`NAMED_SPLITS`.

    Raises:
        DatasetError: Missing folders, no images, images without labels, or a named split
            that selects no frame.
    """
    root = require_dir(Path(root), 'CamVid root')
    pairs: list[tuple[Path, Path]] = []
    for folder, keep in NAMED_SPLITS.get(split, ((split, _every_sequence),)):
        image_dir = require_dir(root / folder, f'CamVid image split {folder!r}')
        label_dir = require_dir(root / f'{folder}annot', f'CamVid label folder of {folder!r}')
        images = [p for p in images_in(image_dir) if keep(sequence_of(p))]
        pairs += pair_files(images, functools.partial(_label_of, label_dir))
    if not pairs:
        raise DatasetError(f'CamVid split {split!r} has no frame under {root}')
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
