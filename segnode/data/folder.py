"""A generic dataset: ``<root>/<split>/images/*`` and ``<root>/<split>/labels/<stem>.png``.

Labels are single-channel id maps. The class table is a YAML file (default
``<root>/classes.yaml``)::

    name: my-dataset              # optional
    classes:                      # class id = position in this list
      - {name: road, color: [128, 64, 128]}
      - {name: car, color: [0, 0, 142], id: 26}   # id: raw label value (default: position)

Raw label values not listed become 255 (ignore).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from segnode.config import read_yaml
from segnode.data.dataset import check_pair_sizes, DatasetSpec, LutDecoder
from segnode.data.labels import class_table, ClassTable, IGNORE_ID, lookup_table
from segnode.data.scan import images_in, pair_files, require_dir
from segnode.errors import ConfigError, DatasetError

__all__ = ['load_class_table', 'scan_folder']


def _class_entry(entry: Any, k: int, path: Path) -> tuple[str, tuple[int, int, int], int]:
    if not isinstance(entry, dict) or 'name' not in entry:
        raise DatasetError(f'{path}: classes[{k}] must be a mapping with a name, got {entry!r}')
    unknown = sorted(set(entry) - {'name', 'color', 'id'})
    if unknown:
        raise DatasetError(f'{path}: classes[{k}] has unknown key {unknown[0]!r}')
    colour = entry.get('color', class_table(k + 1).palette[k])
    raw = entry.get('id', k)
    if not (isinstance(colour, (list, tuple)) and len(colour) == 3):
        raise DatasetError(f'{path}: classes[{k}].color must be [R, G, B], got {colour!r}')
    if not isinstance(raw, int) or not 0 <= raw < IGNORE_ID:
        raise DatasetError(f'{path}: classes[{k}].id must be an integer in 0..254, got {raw!r}')
    return str(entry['name']), (int(colour[0]), int(colour[1]), int(colour[2])), raw


def load_class_table(path: Path) -> tuple[ClassTable, dict[int, int]]:
    """Read a YAML class table; returns the table and the raw value -> class id mapping.

    Raises:
        DatasetError: Missing or malformed file.
    """
    try:
        data = read_yaml(path, 'class table')
    except ConfigError as err:
        raise DatasetError(str(err)) from err
    if not isinstance(data, dict) or not isinstance(data.get('classes'), list):
        raise DatasetError(f'{path}: expected a mapping with a list under "classes"')
    entries = [_class_entry(e, k, path) for k, e in enumerate(data['classes'])]
    if not 1 <= len(entries) <= IGNORE_ID:
        raise DatasetError(f'{path}: 1..255 classes expected, got {len(entries)}')
    raw_ids = [raw for _, _, raw in entries]
    if len(set(raw_ids)) != len(raw_ids):
        raise DatasetError(f'{path}: two classes share a raw label id')
    name = str(data.get('name', 'folder'))
    table = ClassTable(name, tuple(n for n, _, _ in entries), tuple(c for _, c, _ in entries))
    return table, {raw: k for k, raw in enumerate(raw_ids)}


def scan_folder(
    root: Path, split: str, classes: Path | None = None, check_sizes: bool = True
) -> DatasetSpec:
    """Pairs of ``<root>/<split>/images`` and ``<root>/<split>/labels`` with a YAML class table.

    Raises:
        DatasetError: Missing folders or class table, no images, or images without labels.
    """
    root = require_dir(Path(root), 'dataset root')
    table_path = Path(classes) if classes else root / 'classes.yaml'
    if not table_path.is_file():
        raise DatasetError(
            f'class table not found: {table_path} (segnode eval --classes PATH, '
            'segnode train classes=PATH)'
        )
    table, mapping = load_class_table(table_path)
    image_dir = require_dir(root / split / 'images', f'image folder of split {split!r}')
    label_dir = require_dir(root / split / 'labels', f'label folder of split {split!r}')
    pairs = pair_files(images_in(image_dir), lambda p: label_dir / f'{p.stem}.png')
    if check_sizes:
        check_pair_sizes(pairs)
    return DatasetSpec(
        table.dataset, split, tuple(pairs), LutDecoder(lookup_table(mapping)), table
    )
