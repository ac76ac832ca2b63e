"""Make a test bag from a folder of images or a video, optionally with ground-truth labels.

No public rosbag2 with camera images and ground truth is readily available, so evaluation bags
are generated (docs/replay.md, "segnode bag-from-images"): e.g. CamVid frames as rgb8
``sensor_msgs/Image`` at 10 Hz with their ``trainannot/`` label PNGs as mono8 images on a
second topic, stamped alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from segnode.errors import BagWriteError, ImageFormatError
from segnode.pipeline.imaging import encode_compressed
from segnode.replay.bag_writer import (
    BagWriter,
    check_topic_name,
    make_compressed,
    make_header,
    make_image,
)
from segnode.replay.options import BagFromImagesOptions

__all__ = [
    'DEFAULT_START_NS',
    'IMAGE_SUFFIXES',
    'BagSummary',
    'bag_from_images',
    'id_ranges',
    'write_frames',
]

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp')
DEFAULT_START_NS = 1_700_000_000 * 1_000_000_000  # 2023-11-14, fixed so bags are reproducible
IMAGE_TYPE = 'sensor_msgs/msg/Image'


@dataclass(frozen=True)
class BagSummary:
    """What :func:`bag_from_images` wrote: the bag, its frame count and topics."""

    path: Path
    frames: int
    topics: tuple[str, ...]
    storage: str
    label_ids: tuple[int, ...] = ()  # every value found in the labels, sorted
    files: tuple[Path, ...] = ()  # the images written, in order (a folder source)


def _image_files(folder: Path) -> list[Path]:
    files = sorted(
        p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )
    if not files:
        raise BagWriteError(f'{folder} has no images ({", ".join(IMAGE_SUFFIXES)})')
    return files


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ImageFormatError(f'cannot read image {path}')
    rgb: np.ndarray = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return rgb


def _folder_frames(files: list[Path]) -> Iterator[tuple[str, np.ndarray]]:
    for path in files:
        yield path.stem, _read_rgb(path)


def _video_frames(path: Path) -> tuple[int, Iterator[tuple[str, np.ndarray]]]:
    """(approximate frame count, frames) of a video, checked to yield at least one frame."""
    capture = cv2.VideoCapture(str(path))
    ok, first = capture.read() if capture.isOpened() else (False, None)
    if not ok or first is None:
        capture.release()
        raise BagWriteError(f'cannot read video {path} (not a video, or no frame decodes)')
    total = max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 1)

    def frames() -> Iterator[tuple[str, np.ndarray]]:
        frame, index = first, 0
        try:
            while True:
                yield f'{path.stem}_{index:06d}', cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                ok, following = capture.read()
                if not ok or following is None:
                    return
                frame, index = following, index + 1
        finally:
            capture.release()

    return total, frames()


def _label_files(folder: Path, stems: list[str]) -> dict[str, Path]:
    """Each image stem's label PNG in ``folder`` (CamVid ``trainannot/``: the same stem)."""
    if not folder.is_dir():
        raise BagWriteError(f'label folder {folder} does not exist')
    labels = {p.stem: p for p in folder.iterdir() if p.suffix.lower() == '.png'}
    for stem in stems:
        if stem not in labels:
            raise BagWriteError(f'no label {folder / (stem + ".png")} for image {stem}')
    return {stem: labels[stem] for stem in stems}


def _read_label(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if label is None:
        raise ImageFormatError(f'cannot read label {path}')
    if label.ndim != 2 or label.dtype != np.uint8:
        channels = 1 if label.ndim == 2 else label.shape[2]
        raise ImageFormatError(
            f'label {path} is {channels}-channel {label.dtype}; expected a single-channel '
            '8-bit PNG of class ids'
        )
    if label.shape != shape[:2]:
        raise ImageFormatError(
            f'label {path} is {label.shape[1]}x{label.shape[0]} but its image is '
            f'{shape[1]}x{shape[0]} (WxH)'
        )
    result: np.ndarray = label
    return result


def write_frames(
    writer: BagWriter,
    frames: Iterable[tuple[np.ndarray, np.ndarray | None]],
    *,
    rate: float,
    start_ns: int = DEFAULT_START_NS,
    topic: str = '/camera/image_raw',
    label_topic: str = '/camera/labels',
    frame_id: str = 'camera',
    compressed: bool = False,
) -> int:
    """Write (rgb frame, label or None) pairs at ``rate``; returns how many were written.

    Frame ``i`` is stamped ``start_ns + i / rate`` (header stamp and log time alike): an rgb8
    Image on ``topic`` (or a jpeg CompressedImage on ``<topic>/compressed``), and its label, if
    any, as a mono8 Image on ``label_topic`` with the same header.
    """
    image_topic = f'{topic.rstrip("/")}/compressed' if compressed else topic
    writer.add_topic(image_topic, 'sensor_msgs/msg/CompressedImage' if compressed else IMAGE_TYPE)
    count = 0
    for frame, label in frames:
        stamp = start_ns + round(count * 1_000_000_000 / rate)
        header = make_header(stamp, frame_id)
        if compressed:
            fmt, data = encode_compressed(frame, 'rgb8', 'jpeg')
            writer.write(image_topic, stamp, make_compressed(fmt, data, header))
        else:
            writer.write(image_topic, stamp, make_image(frame, 'rgb8', header))
        if label is not None:
            writer.write(label_topic, stamp, make_image(label, 'mono8', header))
        count += 1
    return count


def bag_from_images(
    source: str | Path,
    out: str | Path,
    *,
    labels: str | Path | None = None,
    rate: float = BagFromImagesOptions.rate,
    compressed: bool = BagFromImagesOptions.compressed,
    topic: str = BagFromImagesOptions.topic,
    label_topic: str = BagFromImagesOptions.label_topic,
    frame_id: str = BagFromImagesOptions.frame_id,
    storage: str = BagFromImagesOptions.storage,
    start_ns: int = DEFAULT_START_NS,
    progress: bool = True,
    limit: int = 0,
) -> BagSummary:
    """Write the frames of an image folder or a video to a new bag, with optional labels.

    Frame ``i`` is stamped ``start_ns + i / rate`` (header stamp and log time alike) and
    written as an rgb8 ``sensor_msgs/Image`` on ``topic``, or with ``compressed`` as a jpeg
    ``sensor_msgs/CompressedImage`` on ``<topic>/compressed`` (image_transport's naming).
    Nothing is left at ``out`` if anything fails.

    Args:
        source: Folder of images (png, jpg, jpeg, bmp; sorted by name) or a video file.
        out: Bag folder to create; it must not exist.
        labels: Folder of single-channel 8-bit label PNGs named like the images (a folder
            source only); each becomes a mono8 Image on ``label_topic`` with the image's header.
        rate: Frames per second of the stamps.
        compressed: Write CompressedImage (jpeg) instead of raw rgb8 Image.
        topic: Image topic (raw; the compressed one appends ``/compressed``).
        label_topic: Label topic.
        frame_id: ``header.frame_id`` of every message.
        storage: 'mcap' or 'sqlite3'.
        start_ns: Stamp of the first frame, nanoseconds since the epoch.
        progress: Show a tqdm progress bar.
        limit: Write the first ``limit`` images of a folder only (0: all).

    Raises:
        BagWriteError: ``out`` exists, the source is missing, empty or an unreadable video, a
            label is missing, or ``rate`` is not positive.
        ImageFormatError: An image or label cannot be read, or a label is not single-channel
            or not the size of its image.
    """
    source, out = Path(source), Path(out)
    if not rate > 0:
        raise BagWriteError(f'rate must be positive, got {rate}')
    if not source.exists():
        raise BagWriteError(f'image source {source} does not exist')
    for name in (topic, label_topic):
        check_topic_name(name)
    writer = BagWriter(out, storage)  # refuses an existing `out` before any frame is read
    if source.is_dir():
        files = _image_files(source)[: limit or None]
        total, frames = len(files), _folder_frames(files)
        written = tuple(files)
        label_files = _label_files(Path(labels), [p.stem for p in files]) if labels else {}
    elif labels:
        raise BagWriteError(f'labels need a folder of images as the source, not {source}')
    else:
        total, frames = _video_frames(source)
        label_files, written = {}, ()
    image_topic = f'{topic.rstrip("/")}/compressed' if compressed else topic
    topics = (image_topic, label_topic) if label_files else (image_topic,)
    if len(set(topics)) < len(topics):
        raise BagWriteError(f'the label topic must differ from the image topic {image_topic}')
    seen = np.zeros(256, bool)  # label values found, for the summary

    def with_label(stem: str, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if not label_files:
            return frame, None
        label = _read_label(label_files[stem], frame.shape)
        seen[np.bincount(label.reshape(-1), minlength=256) > 0] = True
        return frame, label

    pairs: Iterator[tuple[np.ndarray, np.ndarray | None]] = (
        with_label(stem, f) for stem, f in frames
    )
    with writer:
        count = write_frames(
            writer,
            tqdm(pairs, total=total, disable=not progress, unit='frame'),
            rate=rate,
            start_ns=start_ns,
            topic=topic,
            label_topic=label_topic,
            frame_id=frame_id,
            compressed=compressed,
        )
    ids = tuple(int(i) for i in np.flatnonzero(seen))
    return BagSummary(out, count, topics, storage, ids, written[:count])


def id_ranges(ids: Iterable[int]) -> str:
    """Sorted ids as compact ranges: ``0-10, 200, 255``."""
    runs: list[list[int]] = []
    for i in sorted(ids):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ', '.join(f'{a}-{b}' if b > a else f'{a}' for a, b in runs)
