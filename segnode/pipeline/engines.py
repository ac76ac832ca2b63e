"""The engines of a SegmentationService: one per frame shape, kept in LRU order, built aside.

An :class:`EngineCache` holds a segmenter per ``(batch, height, width)``, at most
``max_engines`` of them (the least recently used is dropped and counted). With ``background``
(the node) the engine of a new shape is built on a thread of its own, one build at a time,
while the worker serves the other cameras; :meth:`EngineCache.ready` says None until it is
done.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
import threading
from typing import Any, Protocol

import numpy as np

__all__ = ['EngineCache', 'MAX_ENGINES', 'SegmentBatch', 'SegmenterFactory']

MAX_ENGINES = 8  # default number of engines kept (node parameter max_engines)

Shape = tuple[int, int, int]  # (batch, height, width)


class SegmentBatch(Protocol):
    """What the service needs of a :class:`segnode.engine.segmenter.Segmenter`."""

    def segment_batch(self, frames: Sequence[np.ndarray], encoding: str | None = None) -> Any:
        """Masks of frames, as an object with ``masks`` (N, H, W) uint8."""


SegmenterFactory = Callable[[int, int, int], SegmentBatch]


class EngineCache:
    """Segmenters per frame shape and batch: LRU-evicted, built in the background on request.

    Args:
        factory: ``(batch, height, width) -> Segmenter``; called once per shape.
        max_engines: Segmenters kept at once (at least 1); :attr:`evicted` counts the dropped.
        background: :meth:`ready` builds a new shape on a thread of its own.
    """

    def __init__(
        self, factory: SegmenterFactory, *, max_engines: int = MAX_ENGINES, background: bool
    ) -> None:
        self.max_engines = max(1, max_engines)
        self.background = background
        self.evicted = 0
        self._factory = factory
        self._segmenters: OrderedDict[Shape, SegmentBatch] = OrderedDict()
        self._building: dict[Shape, Future[SegmentBatch]] = {}
        self._build_lock = threading.Lock()  # one background build at a time

    def get(self, n: int, h: int, w: int) -> SegmentBatch:
        """The segmenter for this shape, built here and now when there is none yet."""
        key = (n, h, w)
        if key in self._segmenters:
            self._segmenters.move_to_end(key)
            return self._segmenters[key]
        return self._keep(key, self._factory(n, h, w))

    def ready(self, n: int, h: int, w: int) -> SegmentBatch | None:
        """The segmenter for this shape, or None while it is built in the background.

        Raises:
            SegnodeError: The background build failed (the next frame starts another).
        """
        key = (n, h, w)
        if key in self._segmenters or not self.background:
            return self.get(n, h, w)
        future = self._building.get(key)
        if future is None:
            self._building[key] = self._build_in_background(n, h, w)
            return None
        if not future.done():
            return None
        del self._building[key]
        return self._keep(key, future.result())

    @property
    def building(self) -> bool:
        """Whether a background build is still running (or waiting for its turn)."""
        return any(not f.done() for f in list(self._building.values()))

    def segmenters(self) -> list[SegmentBatch]:
        """The segmenters kept, least recently used first."""
        return list(self._segmenters.values())

    def release(self) -> None:
        """Forget every segmenter; a build still waiting its turn never starts.

        A build already running is left to finish on its own thread; its engine is dropped.
        """
        for future in self._building.values():
            future.cancel()
        self._building.clear()
        self._segmenters.clear()

    def _keep(self, key: Shape, segmenter: SegmentBatch) -> SegmentBatch:
        self._segmenters[key] = segmenter
        while len(self._segmenters) > self.max_engines:
            self._segmenters.popitem(last=False)
            self.evicted += 1
        return segmenter

    def _build_in_background(self, n: int, h: int, w: int) -> Future[SegmentBatch]:
        """Build on a daemon thread, one build at a time.

        Daemon, unlike a ``ThreadPoolExecutor``'s workers, which the interpreter joins at exit:
        a minute-long build would otherwise hold Ctrl-C up until ``ros2 launch`` kills the node.
        """
        future: Future[SegmentBatch] = Future()

        def build() -> None:
            with self._build_lock:
                if not future.set_running_or_notify_cancel():
                    return  # released while it waited for the build before it
                try:
                    future.set_result(self._factory(n, h, w))
                except BaseException as err:  # noqa: BLE001 - handed to the worker's next frame
                    future.set_exception(err)

        threading.Thread(target=build, name=f'segnode-build-{n}x{h}x{w}', daemon=True).start()
        return future
