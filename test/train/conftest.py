"""Fixtures of the training tests: a generated Cityscapes-layout tree and a tiny recipe."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import pytest


def _load_bench_script(name: str) -> Any:
    script = Path(__file__).resolve().parents[2] / 'bench' / f'{name}.py'
    spec = importlib.util.spec_from_file_location(name, script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def bench_script() -> Callable[[str], Any]:
    """Imports a script under bench/ (not a package) by name, as a module for its tests."""
    return _load_bench_script


def write_cityscapes_tree(
    root: Path, splits: dict[str, int], size: tuple[int, int] = (64, 128), seed: int = 0
) -> Path:
    """Random street-like frames and blocky trainId labels in the Cityscapes layout."""
    rng = np.random.default_rng(seed)
    h, w = size
    for split, count in splits.items():
        for i in range(count):
            city = 'aachen' if i % 2 else 'bremen'
            stem = f'{city}_{i:06d}_000019'
            image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            label = np.kron(rng.integers(0, 19, (h // 16, w // 16)), np.ones((16, 16)))
            label = label.astype(np.uint8)
            label[:4] = 255
            img_dir = root / 'leftImg8bit' / split / city
            gt_dir = root / 'gtFine' / split / city
            img_dir.mkdir(parents=True, exist_ok=True)
            gt_dir.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(img_dir / f'{stem}_leftImg8bit.png'), image)
            cv2.imwrite(str(gt_dir / f'{stem}_gtFine_labelTrainIds.png'), label)
    return root


@pytest.fixture(scope='session')
def cityscapes_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated Cityscapes tree: 8 train and 2 val frames of 64x128."""
    return write_cityscapes_tree(tmp_path_factory.mktemp('cityscapes'), {'train': 8, 'val': 2})


def tiny_overrides(root: Path, out_dir: Path, **extra: object) -> list[str]:
    """key=value overrides of a tiny CPU run (64x64 crops, batch 2, width 16, 2 iterations)."""
    values: dict[str, object] = {
        'dataset': 'cityscapes',
        'data_root': str(root),
        'crop': '[64,64]',
        'batch_size': 2,
        'width': 16,
        'max_iters': 2,
        'equalizer_images': 2,
        'ohem_min_kept': 1000,
        'workers': 0,
        'val_limit': 2,
        'device': 'cpu',
        'out_dir': str(out_dir),
        'tensorboard': 'false',
        'log_every': 1,
    }
    values.update(extra)
    return [f'{k}={v}' for k, v in values.items()]
