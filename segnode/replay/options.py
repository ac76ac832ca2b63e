"""The defaults of the bag commands, written once: replay, bag-from-images and demo.

``ReplayOptions`` (rate, speed, topics, labels, outputs), ``BagFromImagesOptions`` (rate,
topics, storage) and ``DemoOptions`` (the drive); the command line reads its defaults from
them.
"""

from __future__ import annotations

from dataclasses import dataclass

from segnode.errors import ReplayError

__all__ = ['BagFromImagesOptions', 'DemoOptions', 'RATES', 'ReplayOptions']

RATES = ('max', 'realtime')


@dataclass(frozen=True)
class ReplayOptions:
    """How to replay.

    Attributes:
        rate: ``max`` or ``realtime``.
        speed: Realtime speed factor (2.0 plays twice as fast).
        image_topics: Image topics to segment; empty finds them (topics named like labels
            are ground truth, not cameras).
        label_topics: Ground-truth topics; empty finds ``.../labels`` topics of the cameras.
        labels_dir: Folder of label PNGs instead of a label topic (single camera).
        label_match: ``stamp`` (file stem is the header stamp in ns) or ``order``.
        out_bag: Output bag with the images, labels, colour masks and metrics ('' for none).
        out_storage: ``mcap`` or ``sqlite3``.
        out_prefix: Namespace of the output topics (the node's default name).
        color: Also write colour masks to the output bag.
        confidence: Build the engine with the confidence output and write
            ``<prefix>/<camera>/confidence`` (mono8) to the output bag, next to the labels.
        overlays: Sample frames kept for the report.
        max_frames: Stop after this many frames (0: all).
        progress: Show a progress bar.
    """

    rate: str = 'max'
    speed: float = 1.0
    image_topics: tuple[str, ...] = ()
    label_topics: tuple[str, ...] = ()
    labels_dir: str = ''
    label_match: str = 'stamp'
    out_bag: str = ''
    out_storage: str = 'mcap'
    out_prefix: str = '/segnode'
    color: bool = False
    confidence: bool = False
    overlays: int = 4
    max_frames: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        """Validate choices."""
        if self.rate not in RATES:
            raise ReplayError(f'--rate must be max or realtime, got {self.rate!r}')
        if self.speed <= 0:
            raise ReplayError(f'--speed must be > 0, got {self.speed}')
        if self.label_match not in ('stamp', 'order'):
            raise ReplayError(f'label matching must be stamp or order, got {self.label_match!r}')


@dataclass(frozen=True)
class BagFromImagesOptions:
    """The defaults of ``segnode bag-from-images`` (``bag_from_images``).

    Attributes:
        rate: Frames per second of the stamps.
        compressed: Write jpeg ``CompressedImage`` on ``<topic>/compressed``.
        topic: Image topic.
        label_topic: Label topic.
        frame_id: Header frame_id.
        storage: ``mcap`` or ``sqlite3``.
    """

    rate: float = 10.0
    compressed: bool = False
    topic: str = '/camera/image_raw'
    label_topic: str = '/camera/labels'
    frame_id: str = 'camera'
    storage: str = 'mcap'


@dataclass(frozen=True)
class DemoOptions:
    """The defaults of ``segnode demo`` (``run_demo``).

    Attributes:
        frames: Frames in the drive.
        size: Frame size (H, W) of a synthetic drive (CamVid's).
        rate: Camera rate in Hz.
        backend: Engine backend (eager starts at once).
        out_dir: Folder for the bag and the report.
    """

    frames: int = 30
    size: tuple[int, int] = (360, 480)
    rate: float = 10.0
    backend: str = 'eager'
    out_dir: str = 'outputs/demo'
