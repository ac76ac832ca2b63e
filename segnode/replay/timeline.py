"""Time in a replay: frames delivered at their arrival times, and the bag's clock.

:func:`run_timeline` feeds a :class:`~segnode.pipeline.service.SegmentationService` frame by frame
at their arrival times and runs its worker on the calling thread, so a slow model drops frames
exactly as it would on the vehicle. :class:`ReplayClock` maps the bag's log time onto a
monotonic clock at a chosen speed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
import time
from typing import Any, NamedTuple

from segnode.pipeline.service import SegmentationService

__all__ = ['Arrival', 'ReplayClock', 'run_timeline']


class Arrival(NamedTuple):
    """A frame arriving at ``t_ns`` on the clock's monotonic timeline."""

    t_ns: int
    camera: str
    msg: Any


def run_timeline(
    service: SegmentationService,
    arrivals: Iterable[Arrival],
    *,
    wait_until: Callable[[int], None],
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """Deliver frames at their arrival times and run the worker on this thread.

    Frames that arrive while the worker is busy wait in their slot and replace each other,
    exactly as on a vehicle, so a slow model drops frames here as it would there. Used with a
    :class:`~segnode.pipeline.scheduler.ManualClock` (tests, simulations) and by realtime replay.

    Args:
        service: The service (its worker thread must not be running).
        arrivals: Frames in arrival order.
        wait_until: Blocks until the clock reads ``t_ns`` (``ManualClock.advance_to``, or a
            sleep on a real clock).
        stop: Polled between frames; True ends the run early.
    """
    if service.running:
        raise RuntimeError('run_timeline drives the worker itself; stop the worker thread first')
    clock = service.clock
    pending = iter(arrivals)
    nxt = next(pending, None)
    while (nxt is not None or service.waiting()) and not stop():
        now = clock.monotonic_ns()
        while nxt is not None and nxt.t_ns <= now:
            service.submit(nxt.camera, nxt.msg, received_ns=nxt.t_ns)
            nxt = next(pending, None)
        if service.waiting():
            service.process_once()
        elif nxt is not None:
            wait_until(nxt.t_ns)


class ReplayClock:
    """Durations from a monotonic source; ``now_ns`` on the bag's timeline from an anchor.

    Args:
        speed: Bag nanoseconds per monotonic nanosecond.
        monotonic_ns: The monotonic source (``time.perf_counter_ns``; a ManualClock's in
            tests).
        sleep_until: Blocks until the source reads the given value.
    """

    def __init__(
        self,
        speed: float = 1.0,
        *,
        monotonic_ns: Callable[[], int] = time.perf_counter_ns,
        sleep_until: Callable[[int], None] | None = None,
    ) -> None:
        self.speed = speed
        self._source = monotonic_ns
        self.sleep_until = sleep_until or self._sleep
        self.anchor(0)

    def anchor(self, bag_ns: int) -> None:
        """Make the present moment correspond to ``bag_ns`` on the bag's timeline."""
        self._bag, self._mono = bag_ns, self._source()

    def skip(self, bag_ns: int) -> None:
        """Jump ``bag_ns`` ahead on the bag's timeline (a gap not waited through)."""
        self._bag += bag_ns

    def monotonic_ns(self) -> int:
        """The monotonic source."""
        return self._source()

    def now_ns(self) -> int:
        """Bag time now."""
        return self._bag + int((self._source() - self._mono) * self.speed)

    def to_monotonic(self, bag_ns: int) -> int:
        """When bag time ``bag_ns`` comes, on the monotonic source."""
        return self._mono + int((bag_ns - self._bag) / self.speed)

    def _sleep(self, t_ns: int) -> None:
        delay = (t_ns - self._source()) * 1e-9
        if delay > 0:
            time.sleep(delay)
