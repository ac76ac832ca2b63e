"""INT8 calibration frames from a bag: spread over the camera topic, resized, one topic."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from segnode.errors import BagReadError
from segnode.replay.bag_frames import bag_frames, is_bag
from segnode.replay.bag_from_images import bag_from_images

N, H, W = 6, 40, 60


def _rgb(i: int) -> np.ndarray:
    rgb: np.ndarray = np.random.default_rng(i).integers(0, 256, (H, W, 3), dtype=np.uint8)
    return rgb


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / 'images'
    folder.mkdir()
    for i in range(N):
        cv2.imwrite(str(folder / f'f{i:03d}.png'), _rgb(i)[:, :, ::-1])
    return folder


def test_frames_are_spread_over_the_topic_and_resized(images: Path) -> None:
    bag = images.parent / 'bag'
    bag_from_images(images, bag, rate=10.0, storage='mcap', progress=False)
    assert is_bag(bag) and not is_bag(images)
    frames = bag_frames(bag, 3, 20, 30)
    expected = [cv2.resize(_rgb(i), (30, 20), interpolation=cv2.INTER_AREA) for i in (0, 2, 5)]
    assert frames.shape == (3, 20, 30, 3) and np.array_equal(frames, np.stack(expected))
    bgr = bag_frames(bag, 3, 20, 30, bgr=True)
    assert np.array_equal(bgr, frames[..., ::-1])
    assert len(bag_frames(bag, 100, 20, 30)) == N  # fewer when the topic has fewer


def test_a_bag_with_several_cameras_needs_the_topic_named(images: Path) -> None:
    labels = images.parent / 'labels'
    labels.mkdir()
    for i in range(N):
        cv2.imwrite(str(labels / f'f{i:03d}.png'), np.full((H, W), i, np.uint8))
    bag = images.parent / 'bag'
    bag_from_images(images, bag, labels=labels, rate=10.0, storage='mcap', progress=False)
    with pytest.raises(BagReadError, match='several image topics'):
        bag_frames(bag, 2, 20, 30)
    assert bag_frames(bag, 2, 20, 30, topic='/camera/image_raw').shape == (2, 20, 30, 3)


def test_export_takes_a_bag_as_calibration(images: Path) -> None:
    from argparse import Namespace

    from segnode.cli.engine import _bag_calibration

    bag = images.parent / 'bag'
    bag_from_images(images, bag, rate=10.0, storage='mcap', progress=False)
    args = Namespace(precision='int8', calibration=str(bag), calibration_frames=4,
                     calibration_topic='', bgr=False)  # fmt: skip
    frames = _bag_calibration(args, 32, 64)
    assert tuple(frames.shape) == (4, 32, 64, 3)  # 4 of the 6, first and last included
    args.calibration = str(images)  # a folder of images: read by the engine itself
    assert _bag_calibration(args, 32, 64) is None
