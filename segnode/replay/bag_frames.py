"""Frames sampled from a bag's camera topic: INT8 calibration on a robot's own images.

``segnode export --precision int8 --calibration BAG`` calibrates on frames spread evenly over
one camera topic of a bag (docs/engine.md, "INT8 without CamVid"), so the INT8 engine of the
bundled model needs no dataset: a few minutes of the robot's own camera are closer to what it
will see than CamVid is.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from segnode.errors import BagReadError, SegnodeError
from segnode.pipeline.imaging import to_rgb_frame

__all__ = ['bag_frames', 'is_bag']


def is_bag(path: str | Path) -> bool:
    """A bag folder (with ``metadata.yaml``), a ``metadata.yaml`` or a ``.db3``/``.mcap`` file."""
    p = Path(path)
    if p.is_file():
        return p.name == 'metadata.yaml' or p.suffix in ('.db3', '.mcap')
    return (p / 'metadata.yaml').is_file()


def bag_frames(
    path: str | Path, count: int, height: int, width: int, *, topic: str = '', bgr: bool = False
) -> np.ndarray:
    """``count`` frames (M, H, W, 3) uint8 spread evenly over a camera topic, resized.

    Args:
        path: The bag.
        count: At most this many frames (fewer when the topic has fewer messages).
        height: Frame height.
        width: Frame width.
        topic: The camera topic; '' takes the bag's only image topic.
        bgr: bgr8 frames (else rgb8).

    Raises:
        BagReadError: No such topic, several and none named, or no decodable frame.
    """
    from segnode.replay.bags import open_bag  # rosbags: the replay extra

    with open_bag(path) as bag:
        topics = bag.image_topics([topic] if topic else None)
        if len(topics) > 1:
            names = ', '.join(t.topic for t in topics)
            raise BagReadError(f'{path} has several image topics ({names}); name one')
        total = topics[0].count
        wanted = set(np.linspace(0, total - 1, min(count, total)).round().astype(int).tolist())
        frames: list[np.ndarray] = []
        for i, message in enumerate(bag.messages([topics[0].topic])):
            if i not in wanted or message.msg is None:
                continue
            try:
                frame, encoding = to_rgb_frame(message.msg)
            except SegnodeError:
                continue  # a bad frame is skipped, as the node skips it
            if (encoding == 'bgr8') != bgr:
                frame = frame[:, :, ::-1]
            frames.append(cv2.resize(np.ascontiguousarray(frame), (width, height),
                                     interpolation=cv2.INTER_AREA))  # fmt: skip
    if not frames:
        raise BagReadError(f'{path}: no decodable frame on {topics[0].topic}')
    return np.stack(frames)
