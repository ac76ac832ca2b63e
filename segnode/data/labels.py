"""Class tables: names, colours and the ignore id of the datasets segnode knows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from segnode.metrics import IGNORE_ID

__all__ = [
    'CAMVID',
    'CAMVID32_COLOURS',
    'CAMVID32_TO_CAMVID',
    'CITYSCAPES',
    'CITYSCAPES_LABEL_TO_TRAIN',
    'ClassTable',
    'class_table',
    'IGNORE_ID',
    'lookup_table',
]


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


# Official cityscapesScripts labelId -> trainId (labels.py); everything else is ignored.
CITYSCAPES_LABEL_TO_TRAIN: dict[int, int] = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
    26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip

# The 32 colour-coded classes of the full-resolution (720x960) CamVid release
# (label_colors.txt), name -> RGB.
CAMVID32_COLOURS: dict[str, tuple[int, int, int]] = {
    'Animal': (64, 128, 64), 'Archway': (192, 0, 128), 'Bicyclist': (0, 128, 192),
    'Bridge': (0, 128, 64), 'Building': (128, 0, 0), 'Car': (64, 0, 128),
    'CartLuggagePram': (64, 0, 192), 'Child': (192, 128, 64), 'Column_Pole': (192, 192, 128),
    'Fence': (64, 64, 128), 'LaneMkgsDriv': (128, 0, 192), 'LaneMkgsNonDriv': (192, 0, 64),
    'Misc_Text': (128, 128, 64), 'MotorcycleScooter': (192, 0, 192),
    'OtherMoving': (128, 64, 64), 'ParkingBlock': (64, 192, 128), 'Pedestrian': (64, 64, 0),
    'Road': (128, 64, 128), 'RoadShoulder': (128, 128, 192), 'Sidewalk': (0, 0, 192),
    'SignSymbol': (192, 128, 128), 'Sky': (128, 128, 128), 'SUVPickupTruck': (64, 128, 192),
    'TrafficCone': (0, 0, 64), 'TrafficLight': (0, 64, 64), 'Train': (192, 64, 128),
    'Tree': (128, 128, 0), 'Truck_Bus': (192, 128, 192), 'Tunnel': (64, 0, 64),
    'VegetationMisc': (192, 192, 0), 'Void': (0, 0, 0), 'Wall': (64, 192, 0),
}  # fmt: skip

# 32 -> 11 grouping (the SegNet classes; the grouping of MATLAB's camvidPixelLabelIDs):
# class id of CAMVID -> the 32-class names merged into it. Void and any other colour -> ignore.
CAMVID32_TO_CAMVID: dict[int, tuple[str, ...]] = {
    0: ('Sky',),
    1: ('Archway', 'Bridge', 'Building', 'Tunnel', 'Wall'),
    2: ('Column_Pole', 'TrafficCone'),
    3: ('LaneMkgsDriv', 'LaneMkgsNonDriv', 'Road', 'RoadShoulder'),
    4: ('ParkingBlock', 'Sidewalk'),
    5: ('Tree', 'VegetationMisc'),
    6: ('Misc_Text', 'SignSymbol', 'TrafficLight'),
    7: ('Fence',),
    8: ('Car', 'OtherMoving', 'SUVPickupTruck', 'Train', 'Truck_Bus'),
    9: ('Animal', 'CartLuggagePram', 'Child', 'Pedestrian'),
    10: ('Bicyclist', 'MotorcycleScooter'),
}


def lookup_table(mapping: Mapping[int, int], default: int = IGNORE_ID) -> np.ndarray:
    """A 256-entry uint8 table mapping raw 8-bit label values; unmapped values -> ``default``."""
    lut = np.full(256, default, dtype=np.uint8)
    for raw, target in mapping.items():
        lut[raw] = target
    return lut
