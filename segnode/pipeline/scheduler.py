"""Frame scheduling: one latest-frame slot per camera, drop accounting, an injectable clock.

A camera callback puts its frame into the camera's slot; a frame still waiting there is
replaced and counted as dropped, so at most one frame per camera ever waits and a slow model
sees the newest frame instead of a growing backlog that makes every mask seconds late
(docs/node.md, "Processing model"). The worker takes frames round-robin across cameras, or
the newest of every camera at once when batching.

Time comes from a :class:`Clock`: the system clock on a vehicle, a :class:`ManualClock` in
tests (deterministic drop counts), a bag's timeline in replay. Standard library only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import threading
import time
from typing import Any, Protocol

__all__ = ['Clock', 'LatestSlots', 'ManualClock', 'Pending', 'SystemClock']


class Clock(Protocol):
    """Where the service reads time from."""

    def monotonic_ns(self) -> int:
        """Nanoseconds for durations (never jumps)."""

    def now_ns(self) -> int:
        """Nanoseconds on the timeline of header stamps (wall clock, ROS time or bag time)."""


class SystemClock:
    """``time.perf_counter_ns`` for durations, ``time.time_ns`` for stamps."""

    def monotonic_ns(self) -> int:
        """Nanoseconds from the performance counter."""
        return time.perf_counter_ns()

    def now_ns(self) -> int:
        """Wall-clock nanoseconds since the epoch."""
        return time.time_ns()


class ManualClock:
    """A clock that moves only when told to (tests and simulations); both readings agree.

    Args:
        start_ns: The initial reading.
    """

    def __init__(self, start_ns: int = 0) -> None:
        self._t = start_ns

    def monotonic_ns(self) -> int:
        """The current reading."""
        return self._t

    def now_ns(self) -> int:
        """The current reading."""
        return self._t

    def advance(self, ns: int) -> None:
        """Move forward by ``ns`` nanoseconds."""
        if ns < 0:
            raise ValueError(f'a clock cannot move backwards ({ns} ns)')
        self._t += ns

    def advance_to(self, t_ns: int) -> None:
        """Move forward to ``t_ns`` (no-op when already past it)."""
        self._t = max(self._t, t_ns)


@dataclass(frozen=True)
class Pending:
    """A received frame waiting for the worker.

    Attributes:
        camera: Camera name.
        msg: The image message (raw or compressed), not decoded yet.
        stamp_ns: Its header stamp.
        received_ns: Monotonic receipt time.
        received_wall_ns: Receipt time on the stamp timeline (``Clock.now_ns``).
    """

    camera: str
    msg: Any
    stamp_ns: int
    received_ns: int
    received_wall_ns: int


class LatestSlots:
    """One slot per camera holding only the newest frame; thread-safe.

    Args:
        cameras: Camera names; the round-robin order.
    """

    def __init__(self, cameras: Sequence[str]) -> None:
        self.cameras = tuple(cameras)
        self._slots: dict[str, Pending | None] = dict.fromkeys(self.cameras)
        self._next = 0
        self._closed = False
        self._cond = threading.Condition()

    def put(self, item: Pending) -> Pending | None:
        """Store ``item`` in its camera's slot; returns the waiting frame it replaced."""
        with self._cond:
            if item.camera not in self._slots:
                raise KeyError(f'unknown camera {item.camera!r}; known: {list(self.cameras)}')
            replaced = self._slots[item.camera]
            self._slots[item.camera] = item
            self._cond.notify()
            return replaced

    def waiting(self) -> int:
        """Frames waiting: at most one per camera."""
        with self._cond:
            return sum(v is not None for v in self._slots.values())

    def take(self, *, every: bool = False, timeout: float | None = 0.0) -> list[Pending]:
        """The next camera's frame (round robin), or every waiting frame with ``every``.

        Args:
            every: Take the newest frame of every camera that has one.
            timeout: Seconds to wait for a frame; 0 returns at once, None waits until a
                frame arrives or :meth:`close` is called.

        Returns:
            The frames taken (empty when none arrived in time or the slots are closed).
        """
        with self._cond:
            if not self._cond.wait_for(self._ready, timeout=timeout):
                return []
            if self._closed:
                return []
            order = self.cameras[self._next :] + self.cameras[: self._next]
            taken: list[Pending] = []
            for cam in order:
                item = self._slots[cam]
                if item is None:
                    continue
                self._slots[cam] = None
                taken.append(item)
                if not every:
                    self._next = (self.cameras.index(cam) + 1) % len(self.cameras)
                    break
            return taken

    def _ready(self) -> bool:
        return self._closed or any(v is not None for v in self._slots.values())

    def clear(self) -> int:
        """Empty every slot; returns how many frames were discarded (not counted as drops)."""
        with self._cond:
            n = sum(v is not None for v in self._slots.values())
            self._slots = dict.fromkeys(self.cameras)
            return n

    def close(self) -> None:
        """Wake every waiting :meth:`take` and make later ones return nothing."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        """Accept takes again after :meth:`close`."""
        with self._cond:
            self._closed = False
