"""What the service hands out: per-frame results and metrics, its callbacks, camera counts.

The node turns these into ROS messages and diagnostics, the replay tool into its report.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = ['CameraStats', 'FrameMetrics', 'FrameResult', 'Outputs']


@dataclass(frozen=True)
class FrameMetrics:
    """Timings of one published frame (milliseconds) and its camera's running counts."""

    t_recv_ms: float  # receipt time on the stamp timeline, ms since its epoch
    queue_wait_ms: float
    preprocess_ms: float
    infer_ms: float
    postprocess_ms: float
    publish_ms: float
    total_ms: float
    pipeline_latency_ms: float
    received_total: int
    processed_total: int
    dropped_total: int
    bad_total: int
    # the camera's most recent ~/<cam>/labels/compressed encode (its own thread; 0: none yet)
    labels_png_ms: float = 0.0

    def as_dict(self) -> dict[str, float]:
        """Name -> value, in field order (the node's metrics message keys)."""
        return asdict(self)


@dataclass(frozen=True)
class FrameResult:
    """Everything the service produced for one frame (for replay and tests)."""

    camera: str
    header: Any
    stamp_ns: int
    frame: np.ndarray  # (H, W, 3) uint8 as decoded
    encoding: str  # rgb8 or bgr8
    mask: np.ndarray  # (H, W) uint8 class ids
    metrics: FrameMetrics
    confidence: np.ndarray | None = None  # (H, W) uint8, with engine.confidence


@dataclass
class Outputs:
    """Where results go. Every callback runs on the worker thread.

    Attributes:
        labels: ``(camera, header, mask)`` with the input header.
        color: ``(camera, header, rgb)``; called only while ``want_color(camera)``.
        confidence: ``(camera, header, confidence)`` (H, W) uint8, 255 x the winning class's
            softmax probability; called only while ``want_confidence(camera)`` and only for
            an engine built with the confidence output (``engine.confidence``).
        compressed_labels: ``(camera, header, png_bytes)``; called only while
            ``want_compressed(camera)``, on the PNG encoder's thread
            (:class:`~segnode.pipeline.compressed.PngEncoder`), not the worker's.
        metrics: ``(camera, header, FrameMetrics)`` after labels and colour are out.
        want_color: Whether anyone listens for a camera's colour mask now.
        want_confidence: Whether anyone listens for a camera's confidence now.
        want_compressed: Whether anyone listens for a camera's compressed labels now.
        bad_frame: ``(camera, reason)`` for a frame that could not be decoded or segmented.
        dropped: ``(camera, stamp_ns, reason)`` for a frame replaced in its slot
            (``replaced``), too old when taken (``stale``), or taken while its engine was
            being built in the background (``engine building``).
        result: Every processed frame with its decoded image and mask.
    """

    labels: Callable[[str, Any, np.ndarray], None] | None = None
    color: Callable[[str, Any, np.ndarray], None] | None = None
    metrics: Callable[[str, Any, FrameMetrics], None] | None = None
    want_color: Callable[[str], bool] = field(default=lambda camera: False)
    confidence: Callable[[str, Any, np.ndarray], None] | None = None
    want_confidence: Callable[[str], bool] = field(default=lambda camera: False)
    compressed_labels: Callable[[str, Any, bytes], None] | None = None
    want_compressed: Callable[[str], bool] = field(default=lambda camera: False)
    bad_frame: Callable[[str, str], None] | None = None
    dropped: Callable[[str, int, str], None] | None = None
    result: Callable[[FrameResult], None] | None = None


@dataclass
class CameraStats:
    """Running counts of one camera and its most recent latencies (bounded)."""

    received: int = 0
    processed: int = 0
    replaced: int = 0
    stale: int = 0
    bad: int = 0
    recent_total_ms: deque[float] = field(default_factory=lambda: deque(maxlen=300))
    recent_publish_ns: deque[int] = field(default_factory=lambda: deque(maxlen=300))
    last_received_ns: int = 0  # service clock (monotonic) of the newest frame, 0: none yet
    building: int = 0  # frames dropped while their engine was being built in the background

    @property
    def dropped(self) -> int:
        """Frames never segmented: replaced by a newer one, stale, or waiting for an engine."""
        return self.replaced + self.stale + self.building

    def snapshot(self) -> CameraStats:
        """A copy that later updates do not change."""
        return CameraStats(
            self.received,
            self.processed,
            self.replaced,
            self.stale,
            self.bad,
            deque(self.recent_total_ms, maxlen=self.recent_total_ms.maxlen),
            deque(self.recent_publish_ns, maxlen=self.recent_publish_ns.maxlen),
            self.last_received_ns,
            self.building,
        )
