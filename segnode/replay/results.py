"""What a replay measured: per-camera counts and stage timings, accuracy, sample overlays.

The replay driver fills these; :mod:`segnode.replay.report` turns them into JSON, Markdown and
plots. Plain data only, so a report can be rebuilt from a run without re-running it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ['STAGES', 'CameraResult', 'Overlay', 'ReplayResult']

# Per-frame stages, in pipeline order (milliseconds; the node's metrics topic uses the same names).
STAGES = (
    'queue_wait_ms',
    'preprocess_ms',
    'infer_ms',
    'postprocess_ms',
    'publish_ms',
    'total_ms',
    'pipeline_latency_ms',
)


@dataclass
class CameraResult:
    """One camera's replay.

    Attributes:
        camera: Camera name (derived from the topic).
        topic: Image topic in the bag.
        frames: Frames that arrived (read from the bag).
        processed: Frames segmented and published.
        dropped: Frames replaced in the latest-frame slot or too old when dequeued.
        bad: Frames that could not be decoded (counted, skipped).
        stages: Stage name (``STAGES``) -> one value per processed frame, in ms.
        bag_time_s: Bag time of each processed frame, seconds from the first message.
        wall_time_s: Wall-clock time of each processed frame, seconds (perf_counter).
        scored: Frames with ground truth that were scored.
        unscored: Frames whose ground truth could not be scored (a label of another size).
    """

    camera: str
    topic: str
    frames: int = 0
    processed: int = 0
    dropped: int = 0
    bad: int = 0
    stages: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    bag_time_s: list[float] = field(default_factory=list)
    wall_time_s: list[float] = field(default_factory=list)
    scored: int = 0
    unscored: int = 0

    @property
    def effective_hz(self) -> float:
        """Processed frames per second of bag time."""
        if self.processed < 2:
            return 0.0
        span = self.bag_time_s[-1] - self.bag_time_s[0]
        return (self.processed - 1) / span if span > 0 else 0.0

    @property
    def throughput_hz(self) -> float:
        """Processed frames per second of wall-clock time (max mode: the real rate)."""
        if self.processed < 2 or len(self.wall_time_s) < 2:
            return 0.0
        span = self.wall_time_s[-1] - self.wall_time_s[0]
        return (self.processed - 1) / span if span > 0 else 0.0


@dataclass(frozen=True)
class Overlay:
    """A sample frame for the report: rgb image, predicted mask, optional ground truth."""

    camera: str
    stamp_ns: int
    image: np.ndarray  # (H, W, 3) uint8 rgb
    mask: np.ndarray  # (H, W) uint8 class ids
    truth: np.ndarray | None = None  # (H, W) uint8 class ids, >= K ignored


@dataclass
class ReplayResult:
    """A whole replay.

    Attributes:
        bag: The bag path as given.
        mode: ``max`` or ``realtime``.
        speed: Realtime speed factor (1.0 in max mode).
        engine: Engine description (backend, device, precision).
        model: Checkpoint path or ``random weights``.
        class_names: Names of classes 0..K-1.
        palette: (K, 3) uint8 rgb colours.
        cameras: One entry per camera, in topic order.
        wall_s: Wall-clock duration of the replay.
        engine_s: Wall-clock time spent inside the engine (sum of ``infer_ms``).
        confusion: K x K counts over processed frames with ground truth (rows truth), or None.
        consumer_confusion: Realtime mode: K x K counts over every frame with ground truth,
            a dropped frame scored with the newest mask published before it; None otherwise.
        overlays: A few sample frames.
        interrupted: Stopped early by Ctrl-C (the report covers what ran).
        notes: Things the user should know (e.g. the metadata-mismatch fallback was used).
        truth: Camera topic -> where its ground truth came from (a label topic or folder).
    """

    bag: str
    mode: str
    speed: float
    engine: str
    model: str
    class_names: tuple[str, ...]
    palette: np.ndarray
    cameras: list[CameraResult]
    wall_s: float = 0.0
    engine_s: float = 0.0
    confusion: np.ndarray | None = None
    consumer_confusion: np.ndarray | None = None
    overlays: list[Overlay] = field(default_factory=list)
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)
    truth: dict[str, str] = field(default_factory=dict)
