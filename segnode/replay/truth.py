"""Ground truth for a replay: a mono8 label topic of the bag, or a folder of label PNGs.

Masks are matched to frames by header stamp (a topic, or PNGs named ``<stamp_ns>.png``) or by
frame order (``--label-match order``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from segnode.errors import clip, ReplayError
from segnode.pipeline import imaging
from segnode.replay.bags import BagReader
from segnode.replay.options import ReplayOptions

__all__ = ['Truth', 'is_label_topic', 'load_truth', 'segnode_outputs']

DIAGNOSTICS = 'diagnostic_msgs/msg/DiagnosticArray'


def is_label_topic(topic: str) -> bool:
    last = topic.rstrip('/').rsplit('/', 1)[-1]
    return 'label' in last or 'annot' in last


def _prefix(topic: str) -> str:
    return topic.rstrip('/').rsplit('/', 1)[0]


def segnode_outputs(topics: dict[str, str]) -> set[str]:
    """The topics a segnode node or ``replay --out`` published: never cameras or truth.

    segnode writes ``<ns>/<camera>/labels``, ``.../color``, ``.../confidence`` and
    ``.../metrics`` (a DiagnosticArray); a namespace with such a ``metrics`` topic marks its
    ``labels``, ``color`` and ``confidence`` as segnode's own images (grading a model against
    its own masks gives mIoU 1.0; a confidence image is no camera).

    Args:
        topics: Topic name -> message type, as in the bag.
    """
    spaces = {
        _prefix(t) for t, kind in topics.items() if t.endswith('/metrics') and kind == DIAGNOSTICS
    }
    return {
        t
        for t in topics
        if _prefix(t) in spaces and t.rsplit('/', 1)[-1] in ('labels', 'color', 'confidence')
    }


class Truth:
    """Ground-truth masks per camera, keyed by header stamp (or by frame order)."""

    def __init__(self) -> None:
        self.sources: dict[str, str] = {}  # camera -> label topic or folder
        self.by_stamp: dict[str, dict[int, np.ndarray]] = {}
        self.by_order: list[np.ndarray] = []
        self.order_of: dict[tuple[str, int], int] = {}

    def get(self, camera: str, stamp_ns: int) -> np.ndarray | None:
        if self.by_order:
            index = self.order_of.get((camera, stamp_ns))
            return (
                self.by_order[index] if index is not None and index < len(self.by_order) else None
            )
        return self.by_stamp.get(camera, {}).get(stamp_ns)

    def __bool__(self) -> bool:
        return bool(self.by_stamp or self.by_order)


def load_truth(
    bag: BagReader, cams: dict[str, str], opts: ReplayOptions, label_topics: Sequence[str]
) -> Truth:
    truth = Truth()
    if opts.labels_dir:
        if len(cams) != 1:
            raise ReplayError('--labels DIR needs exactly one camera; use a label topic instead')
        camera = next(iter(cams.values()))
        truth.sources[camera] = f'label PNGs in {opts.labels_dir}'
        if not Path(opts.labels_dir).is_dir():
            raise ReplayError(f'--labels {opts.labels_dir} does not exist or is not a folder')
        files = sorted(Path(opts.labels_dir).glob('*.png'))
        if not files:
            raise ReplayError(f'no label PNGs in {opts.labels_dir}')
        for f in files:
            label = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
            if label is None:
                raise ReplayError(f'{f} cannot be read (truncated, or not a PNG)')
            if label.ndim != 2:
                raise ReplayError(f'{f} is not a single-channel label PNG')
            if opts.label_match == 'order':
                truth.by_order.append(label)
            elif f.stem.isdigit():
                truth.by_stamp.setdefault(camera, {})[int(f.stem)] = label
            else:
                raise ReplayError(
                    f'{f.name}: matching by stamp needs file names like <stamp_ns>.png; '
                    'use --label-match order'
                )
        return truth
    owner = {_prefix(t): cam for t, cam in cams.items()}
    for msg in bag.messages(label_topics):
        if msg.error:
            continue  # that frame is not scored
        only = next(iter(cams.values())) if len(cams) == 1 else None
        cam = owner.get(_prefix(msg.topic), only)
        if cam is None:
            raise ReplayError(
                f'cannot tell which camera label topic {clip(msg.topic)} belongs to; name both '
                'with --image-topic and --label-topic in the same namespace'
            )
        truth.sources.setdefault(cam, msg.topic)
        mask = imaging.image_to_array(msg.msg)
        if mask.ndim != 2 or mask.dtype != np.uint8:
            raise ReplayError(
                f'label topic {clip(msg.topic)} must be mono8, got {clip(msg.msg.encoding, 40)!r}'
            )
        truth.by_stamp.setdefault(cam, {})[imaging.stamp_ns(msg.msg.header)] = mask.copy()
    return truth
