"""What the node reports on ``/diagnostics``, computed from the service's counters.

Plain functions of :class:`~segnode.pipeline.service.CameraStats` and the engines in use; the
node wraps their results into ``diagnostic_msgs`` statuses on ``/diagnostics``. No rclpy here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from segnode.engine.segmenter import describe_engine
from segnode.metrics import percentiles
from segnode.pipeline.service import CameraStats

__all__ = ['RATE_WINDOW_S', 'Summary', 'camera_summary', 'engine_summary', 'gpu_memory']

RATE_WINDOW_S = 5.0  # publish rate and "no output" are judged over this window


class Summary(NamedTuple):
    """One diagnostic status: healthy or not, a one-line message, key -> text values.

    ``error`` marks a status that is not merely a warning (the worker has stopped).
    """

    ok: bool
    message: str
    values: dict[str, str]
    error: bool = False


def camera_summary(
    stats: CameraStats,
    now_ns: int,
    *,
    active: bool,
    enabled: bool = True,
    failure: str = '',
    building: bool = False,
) -> Summary:
    """Rate, drops, bad frames and p50/p95 of ``total_ms`` of one camera.

    Args:
        stats: The camera's counters (``SegmentationService.stats()[camera]``).
        now_ns: The service clock's ``monotonic_ns()`` now (publish times use it).
        active: Whether the node is active (subscribed, worker running).
        enabled: Whether inference is enabled (``~/enable``).
        failure: Why the service's worker stopped (``SegmentationService.failure``), if it did.
        building: Whether an engine is being built in the background (a new frame size):
            no mask yet is then expected, not a stall.

    Returns:
        Not ok when active and enabled but nothing was published for ``RATE_WINDOW_S`` after
        frames had arrived; the message says which: frames still arriving and no masks (a
        stalled engine, or every frame bad or stale), or no frame arriving (an idle camera:
        its driver or the network stopped).
    """
    window_ns = RATE_WINDOW_S * 1e9
    recent = [t for t in stats.recent_publish_ns if now_ns - t <= window_ns]
    span_ns = recent[-1] - recent[0] if len(recent) >= 2 else 0
    rate_hz = (len(recent) - 1) * 1e9 / span_ns if span_ns > 0 else 0.0
    p50, p95 = percentiles(stats.recent_total_ms, (50.0, 95.0))
    values = {
        'rate_hz': f'{rate_hz:.2f}',
        'latency_p50_ms': f'{p50:.2f}',
        'latency_p95_ms': f'{p95:.2f}',
        'received': str(stats.received),
        'processed': str(stats.processed),
        'dropped': str(stats.dropped),
        'dropped_replaced': str(stats.replaced),
        'dropped_stale': str(stats.stale),
        'dropped_building': str(stats.building),
        'bad': str(stats.bad),
        'last_frame_age_s': (
            f'{(now_ns - stats.last_received_ns) / 1e9:.1f}' if stats.last_received_ns else '-'
        ),
    }
    if failure:
        return Summary(False, f'worker stopped: {failure}', values, error=True)
    if not active:
        return Summary(True, 'inactive', values)
    if not enabled:
        return Summary(True, 'paused (~/enable)', values)
    if not recent and stats.received and building:
        return Summary(
            True,
            f'engine building for a new frame size: frames are dropped until it is ready '
            f'({stats.building} so far)',
            values,
        )
    if not recent and stats.received:
        quiet_s = (now_ns - stats.last_received_ns) / 1e9
        if stats.last_received_ns and quiet_s > RATE_WINDOW_S:
            message = (
                f'idle: no frame received for {quiet_s:.0f} s (the camera or its driver '
                f'stopped; {stats.received} received before)'
            )
        else:
            message = (
                f'stalled: frames arrive but no mask was published in the last '
                f'{RATE_WINDOW_S:.0f} s ({stats.received} received, {stats.bad} bad, '
                f'{stats.stale} stale)'
            )
        return Summary(False, message, values)
    if not stats.received:
        return Summary(True, 'waiting for images', values)
    return Summary(True, f'{rate_hz:.1f} Hz, p50 {p50:.1f} ms, p95 {p95:.1f} ms', values)


def engine_summary(segmenters: Sequence[Any], model_description: str, evicted: int = 0) -> Summary:
    """Backend, precision and device of every engine built so far, and the model in use.

    Args:
        segmenters: ``SegmentationService.segmenters()`` (engines are built at the first frame
            of each shape, or by ``prepare``).
        model_description: ``LoadedModel.description``.
        evicted: Engines dropped to stay within ``max_engines``
            (``SegmentationService.engines_evicted``).
    """
    values = {'model': model_description, 'engines_evicted': str(evicted)}
    for shape, what in map(describe_engine, segmenters):
        values[f'engine {shape}'] = what
    if not segmenters:
        return Summary(True, 'no engine yet (built at the first frame of each size)', values)
    engines = sorted({v for k, v in values.items() if k.startswith('engine ')})
    return Summary(True, '; '.join(engines), values)


def gpu_memory() -> dict[str, str]:
    """CUDA memory allocated and reserved by torch (MiB); empty where CUDA is not in use."""
    import torch

    if not torch.cuda.is_available():
        return {}
    if not torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        return {}
    mib = 1 << 20
    return {
        'gpu': torch.cuda.get_device_name(),
        'gpu_allocated_mib': f'{torch.cuda.memory_allocated() / mib:.0f}',
        'gpu_reserved_mib': f'{torch.cuda.memory_reserved() / mib:.0f}',
    }
