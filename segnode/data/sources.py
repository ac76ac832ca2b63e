"""Open a dataset split by name: the one dict of known dataset layouts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from segnode.data.camvid import scan_camvid, scan_camvid32
from segnode.data.cityscapes import scan_cityscapes
from segnode.data.dataset import DatasetSpec
from segnode.data.folder import scan_folder
from segnode.errors import DatasetError, SegnodeError

__all__ = ['DATASETS', 'scan_dataset', 'seen_in_training']

DATASETS = ('cityscapes', 'camvid', 'camvid32', 'folder')


def scan_dataset(
    name: str, root: str | Path, split: str, classes: str | Path | None = None
) -> DatasetSpec:
    """Find the pairs of split ``split`` of dataset layout ``name`` under ``root``.

    Args:
        name: ``cityscapes``, ``camvid`` (11-class SegNet layout), ``camvid32`` (32-class
            colour release mapped to 11 classes) or ``folder`` (generic, YAML class table).
        root: Dataset root folder.
        split: Split name (``train``, ``val``, ...).
        classes: Class table YAML of the ``folder`` layout.

    Raises:
        DatasetError: Unknown layout, or anything the scanner rejects.
    """
    if not str(root):
        raise DatasetError(f'no data root given for dataset {name!r} (set data_root)')
    root = Path(root).expanduser()
    if name == 'cityscapes':
        return scan_cityscapes(root, split)
    if name == 'camvid':
        return scan_camvid(root, split)
    if name == 'camvid32':
        return scan_camvid32(root, split)
    if name == 'folder':
        return scan_folder(root, split, Path(classes) if classes else None)
    raise DatasetError(f'unknown dataset {name!r}; known: {", ".join(DATASETS)}')


def seen_in_training(recipe: Mapping[str, Any], root: str | Path, images: Iterable[Path]) -> int:
    """How many of ``images`` are frames of the split a checkpoint was trained on.

    ``recipe`` is the checkpoint's recorded recipe (its ``dataset``, ``train_split`` and
    ``classes``); that split is read under ``root`` (where these images came from, not the
    trainer's path) and compared by resolved path, so ``trainval`` holds every ``val`` frame
    and ``train`` none. A score on frames a model trained on measures how it fits them, not
    how it does on new streets. 0 when the recipe names no split or it cannot be read there.
    """
    dataset, split = str(recipe.get('dataset') or ''), str(recipe.get('train_split') or '')
    if not dataset or not split or not str(root):
        return 0
    try:
        spec = scan_dataset(dataset, root, split, recipe.get('classes') or None)
    except SegnodeError:
        return 0
    trained = {image.resolve() for image, _ in spec.pairs}
    return sum(Path(image).resolve() in trained for image in images)
