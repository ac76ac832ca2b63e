"""bag_from_images and ``segnode bag-from-images``: folders, labels, video, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from segnode.cli import main
from segnode.errors import BagWriteError, ImageFormatError
from segnode.pipeline.imaging import image_to_array, stamp_ns, to_rgb_frame
from segnode.replay.bag_from_images import bag_from_images, DEFAULT_START_NS, id_ranges
from segnode.replay.bags import open_bag

H, W, N = 6, 8, 3


def _rgb(i: int) -> np.ndarray:
    rng = np.random.default_rng(i)
    rgb: np.ndarray = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    return rgb


def _label(i: int) -> np.ndarray:
    return (np.arange(H * W, dtype=np.uint8).reshape(H, W) + i) % 11


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """A CamVid-like pair of folders: images/ (png) and labels/ (class-id png, same stems)."""
    (tmp_path / 'images').mkdir()
    (tmp_path / 'labels').mkdir()
    for i in range(N):
        cv2.imwrite(str(tmp_path / 'images' / f'f{i:03d}.png'), _rgb(i)[:, :, ::-1])
        cv2.imwrite(str(tmp_path / 'labels' / f'f{i:03d}.png'), _label(i))
    (tmp_path / 'images' / 'readme.txt').write_text('not an image')
    return tmp_path / 'images'


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_folder_with_labels(images: Path, storage: str) -> None:
    out = images.parent / 'bag'
    summary = bag_from_images(
        images, out, labels=images.parent / 'labels', rate=20.0, storage=storage, progress=False
    )
    assert (summary.path, summary.frames, summary.storage) == (out, N, storage)
    assert summary.topics == ('/camera/image_raw', '/camera/labels')
    assert summary.label_ids == tuple(range(11))
    with open_bag(out) as bag:
        assert {t.topic: t.count for t in bag.info.topics.values()} == dict.fromkeys(
            summary.topics, N
        )
        assert [t.topic for t in bag.image_topics()] == ['/camera/image_raw', '/camera/labels']
        messages = list(bag.messages(summary.topics))
    images_, labels = messages[0::2], messages[1::2]
    assert [m.topic for m in images_] == ['/camera/image_raw'] * N
    for i, (image, label) in enumerate(zip(images_, labels, strict=True)):
        stamp = DEFAULT_START_NS + i * 50_000_000
        assert stamp_ns(image.msg.header) == stamp_ns(label.msg.header) == stamp
        assert image.log_time_ns == label.log_time_ns == stamp
        assert image.msg.header.frame_id == label.msg.header.frame_id == 'camera'
        assert (image.msg.encoding, label.msg.encoding) == ('rgb8', 'mono8')
        np.testing.assert_array_equal(image_to_array(image.msg), _rgb(i))
        np.testing.assert_array_equal(image_to_array(label.msg), _label(i))


def test_video_source(tmp_path: Path) -> None:
    video = tmp_path / 'clip.avi'
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*'MJPG'), 10, (16, 12))
    for i in range(5):
        writer.write(np.full((12, 16, 3), (40 * i, 20, 200), dtype=np.uint8))  # BGR
    writer.release()
    summary = bag_from_images(video, tmp_path / 'bag', rate=5.0, storage='sqlite3', progress=False)
    assert summary.frames == 5
    with open_bag(tmp_path / 'bag') as bag:
        messages = list(bag.messages(['/camera/image_raw']))
    assert [m.log_time_ns - DEFAULT_START_NS for m in messages] == [
        i * 200_000_000 for i in range(5)
    ]
    last = image_to_array(messages[-1].msg)
    assert last.shape == (12, 16, 3)
    np.testing.assert_allclose(last.reshape(-1, 3).mean(0), (200, 20, 160), atol=8)  # RGB


def test_compressed(images: Path) -> None:
    out = images.parent / 'bag'
    summary = bag_from_images(images, out, compressed=True, topic='/cam/image', progress=False)
    assert summary.topics == ('/cam/image/compressed',)
    with open_bag(out) as bag:
        (info,) = bag.image_topics()
        assert (info.msgtype, info.count) == ('sensor_msgs/msg/CompressedImage', N)
        first = next(bag.messages(['/cam/image/compressed'])).msg
    assert first.format == 'rgb8; jpeg compressed bgr8'
    frame, order = to_rgb_frame(first)
    assert frame.shape == (H, W, 3) and order == 'bgr8'


def _fails(images: Path, error: type[Exception], match: str, **kwargs: Any) -> None:
    before = _leftovers(images.parent)
    with pytest.raises(error, match=match):
        bag_from_images(images, images.parent / 'bag', progress=False, **kwargs)
    assert _leftovers(images.parent) == before  # no bag, no temporary folder


def test_label_errors_leave_no_output(images: Path) -> None:
    labels = images.parent / 'labels'
    (labels / 'f002.png').unlink()
    _fails(images, BagWriteError, r'no label .*labels/f002.png for image f002', labels=labels)
    cv2.imwrite(str(labels / 'f002.png'), np.zeros((H, W + 1), dtype=np.uint8))
    _fails(
        images, ImageFormatError, r'label .*f002.png is 9x6 but its image is 8x6', labels=labels
    )
    cv2.imwrite(str(labels / 'f002.png'), np.zeros((H, W, 3), dtype=np.uint8))
    _fails(
        images,
        ImageFormatError,
        r'f002.png is 3-channel uint8; expected a single-channel',
        labels=labels,
    )
    _fails(images, BagWriteError, 'label folder .*absent does not exist', labels=images / 'absent')


def test_source_errors_leave_no_output(images: Path) -> None:
    (images / 'f001.png').write_bytes(b'not a png')
    _fails(images, ImageFormatError, r'cannot read image .*images/f001.png')
    for path in images.iterdir():
        path.unlink()
    _fails(images, BagWriteError, r'images has no images \(.png, .jpg, .jpeg, .bmp\)')
    (images / 'clip.mp4').write_bytes(b'\x00' * 64)
    _fails(images / 'clip.mp4', BagWriteError, 'cannot read video .*clip.mp4')
    _fails(images / 'clip.mp4', BagWriteError, 'labels need a folder', labels=images)
    _fails(images / 'absent', BagWriteError, 'image source .*absent does not exist')
    _fails(images, BagWriteError, 'rate must be positive, got 0', rate=0.0)


def test_refuses_existing_output(images: Path) -> None:
    (images.parent / 'bag').mkdir()
    with pytest.raises(BagWriteError, match='bag already exists'):
        bag_from_images(images, images.parent / 'bag', progress=False)
    assert list((images.parent / 'bag').iterdir()) == []


def test_cli(images: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = images.parent / 'bag'
    labels = str(images.parent / 'labels')
    args = ['bag-from-images', str(images), '--out', str(out), '--labels', labels, '--rate', '5',
            '--storage', 'sqlite3', '--topic', '/front/image_raw',
            '--label-topic', '/front/labels']  # fmt: skip
    assert main(args) == 0
    wrote, ids = capsys.readouterr().out.strip().splitlines()
    assert wrote == f'wrote {N} frames to {out} (sqlite3, topics /front/image_raw, /front/labels)'
    assert ids.startswith('label ids found: 0-10 (replay scores ids below')
    with open_bag(out) as bag:
        assert bag.info.storage == 'sqlite3' and bag.info.topics['/front/labels'].count == N
    assert main(args) == 2
    assert capsys.readouterr().err.strip() == (
        f'segnode: error: {out} already exists; bags are never overwritten'
    )


def test_label_ids_are_summarised_as_ranges() -> None:
    assert id_ranges([255, 0, 1, 2, 200, 4]) == '0-2, 4, 200, 255'
    assert id_ranges([]) == ''
