"""Class tables: names, colours and the ignore id of the datasets segnode knows."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ['CAMVID', 'CITYSCAPES', 'ClassTable', 'class_table', 'IGNORE_ID']

IGNORE_ID = 255


@dataclass(frozen=True)
class ClassTable:
    """Names and RGB colours of the classes 0..K-1; label 255 means ignore / unlabeled."""

    dataset: str
    names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]

    @property
    def num_classes(self) -> int:
        """K."""
        return len(self.names)


CITYSCAPES = ClassTable(
    'cityscapes',
    ('road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light', 'traffic sign',
     'vegetation', 'terrain', 'sky', 'person', 'rider', 'car', 'truck', 'bus', 'train',
     'motorcycle', 'bicycle'),
    ((128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
     (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
     (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
     (0, 80, 100), (0, 0, 230), (119, 11, 32)),
)  # fmt: skip

# The 11-class SegNet layout; label 11 (void) is mapped to IGNORE_ID by the loader.
CAMVID = ClassTable(
    'camvid',
    ('sky', 'building', 'pole', 'road', 'pavement', 'tree', 'sign_symbol', 'fence', 'car',
     'pedestrian', 'bicyclist'),
    ((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
     (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192)),
)  # fmt: skip

_TABLES = {t.dataset: t for t in (CITYSCAPES, CAMVID)}


def class_table(name_or_k: str | int) -> ClassTable:
    """The table of a known dataset by name, or a generic one for K classes.

    Generic tables name classes ``class_0..class_{K-1}`` with a deterministic palette.
    """
    if isinstance(name_or_k, str):
        if name_or_k not in _TABLES:
            raise KeyError(f'unknown dataset {name_or_k!r}; known: {", ".join(sorted(_TABLES))}')
        return _TABLES[name_or_k]
    k = name_or_k
    palette = tuple(((37 * i) % 256, (91 * i + 64) % 256, (173 * i + 128) % 256) for i in range(k))
    return ClassTable('generic', tuple(f'class_{i}' for i in range(k)), palette)
