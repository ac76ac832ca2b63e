"""Helpers for dataset scanners: required folders and image/label pairing with clear errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from segnode.data.io import IMAGE_SUFFIXES
from segnode.errors import DatasetError

__all__ = ['images_in', 'pair_files', 'require_dir']


def require_dir(path: Path, what: str) -> Path:
    """``path`` if it is a folder, else a DatasetError naming ``what``."""
    if not path.is_dir():
        parent = path.parent
        hint = ''
        if parent.is_dir():
            found = sorted(p.name for p in parent.iterdir() if p.is_dir())[:8]
            hint = f'; {parent} contains: {", ".join(found) or "no folders"}'
        raise DatasetError(f'{what} not found: {path}{hint}')
    return path


def images_in(folder: Path, pattern: str = '*') -> list[Path]:
    """Image files matching ``pattern`` in ``folder``, sorted; a DatasetError when none."""
    files = sorted(
        p for p in folder.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise DatasetError(f'no images matching {pattern!r} in {folder}')
    return files


def pair_files(images: list[Path], label_of: Callable[[Path], Path]) -> list[tuple[Path, Path]]:
    """Pair each image with its label file; a DatasetError listing missing labels."""
    pairs = [(image, label_of(image)) for image in images]
    missing = [label for _, label in pairs if not label.is_file()]
    if missing:
        raise DatasetError(
            f'{len(missing)} of {len(pairs)} images have no label file, e.g. {missing[0]}'
        )
    return pairs
