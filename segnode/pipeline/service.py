"""SegmentationService: camera messages in, label masks and per-frame metrics out, no ROS.

The node and the replay tool both run this one pipeline::

    submit(camera, msg)          callback side: read the header stamp, swap into the slot
      -> LatestSlots             newest frame per camera; a replaced frame counts as dropped
    process_once()               worker side, per frame taken:
      -> staleness guard         max_age_ms against the header stamp
      -> imaging.to_rgb_frame    preprocess: decode (zero-copy for raw rgb8/bgr8)
      -> Segmenter               inference: upload, engine, download (one per frame shape)
      -> imaging.colorize        postprocess: colour mask, only while someone wants it
      -> Outputs callbacks       publish: labels, confidence, colour, then metrics
      -> PngEncoder              compressed labels, only while someone wants them, encoded
                                 and published on a thread of their own

Per frame the service measures receipt, queue wait, preprocess, inference, postprocess and
publish times; ``total_ms`` is publish minus receipt and ``pipeline_latency_ms`` is now minus
the header stamp (meaningful only with synchronised clocks). A frame that cannot be decoded,
segmented or published is counted as bad and reported through ``Outputs.bad_frame``, whatever
went wrong with it, its reason cut to ``MAX_REASON`` printable characters; the worker goes
on with the next frame. Frames are refused before decoding when the size they declare is below
the network's minimum or above ``max_side`` (compressed ones also when their header declares
more pixels than their bytes can hold, :mod:`segnode.pipeline.image_header`). Engines are
kept per frame shape, at most ``max_engines`` of them (least recently used evicted); with
``background_builds`` (the node) a new shape's engine is built on a thread of its own while the
worker serves the other cameras, and that shape's frames are dropped as ``engine building``.
Should the worker thread ever stop on an error all the same,
:attr:`SegmentationService.failure` says why and :attr:`~SegmentationService.running` turns
false.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import threading
from typing import Any

import numpy as np

from segnode.config import MAX_FRAME_SIDE, MIN_SIDE
from segnode.errors import clip, describe, SegnodeError
from segnode.pipeline import imaging
from segnode.pipeline.compressed import PngEncoder
from segnode.pipeline.engines import EngineCache, MAX_ENGINES, SegmentBatch, SegmenterFactory
from segnode.pipeline.outputs import CameraStats, FrameMetrics, FrameResult, Outputs
from segnode.pipeline.scheduler import Clock, LatestSlots, Pending, SystemClock

__all__ = [
    'CameraStats',
    'FrameMetrics',
    'FrameResult',
    'Outputs',
    'SegmentBatch',
    'SegmentationService',
    'SegmenterFactory',
]

_MS = 1e-6  # nanoseconds -> milliseconds
# The longest bad-frame reason passed on (logged, reported); the rest is cut with its length.
MAX_REASON = 300


class SegmentationService:
    """Schedule, segment and publish the frames of several cameras with one engine.

    Args:
        cameras: Camera names (round-robin order).
        segmenter: ``(batch, height, width) -> Segmenter``; called once per frame shape and
            batch size, the result is reused.
        outputs: Result callbacks.
        palette: (K, 3) uint8 rgb colours of the classes (colour masks).
        clock: Time source (:class:`SystemClock` by default).
        max_age_ms: Drop frames whose stamp is older than this when taken; 0 disables.
        batch: Take the newest frame of every camera and segment them in one call.
        max_side: Refuse frames whose height or width exceeds this (before decoding them).
        max_engines: Engines kept at once (one per frame shape and batch); the least
            recently used one is dropped beyond it (:attr:`engines_evicted` counts them).
        background_builds: Build the engine of a new frame shape on a thread of its own; the
            worker keeps serving the other cameras and drops that shape's frames (reason
            ``engine building``) until it is ready. Off: the worker builds it (replay, tests).
    """

    def __init__(
        self,
        cameras: Sequence[str],
        segmenter: SegmenterFactory,
        outputs: Outputs,
        *,
        palette: np.ndarray | Sequence[Sequence[int]],
        clock: Clock | None = None,
        max_age_ms: float = 0.0,
        batch: bool = False,
        max_side: int = MAX_FRAME_SIDE,
        max_engines: int = MAX_ENGINES,
        background_builds: bool = False,
    ) -> None:
        self.cameras = tuple(cameras)
        self.outputs = outputs
        self.clock: Clock = clock or SystemClock()
        self.max_age_ns = int(max_age_ms * 1e6)
        self.batch = batch
        self.enabled = True
        self.max_side = max_side
        self.failure = ''
        self.engines = EngineCache(
            segmenter, max_engines=max_engines, background=background_builds
        )
        self._lut = imaging.palette_lut(palette)
        self._slots = LatestSlots(self.cameras)
        self._stats = {cam: CameraStats() for cam in self.cameras}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._png: PngEncoder | None = None  # started by the first compressed mask

    # -- callback side ------------------------------------------------------------------

    def submit(self, camera: str, msg: Any, *, received_ns: int | None = None) -> None:
        """Queue ``msg`` (an Image or CompressedImage) as the newest frame of ``camera``.

        Cheap enough for a subscription callback: it reads the header stamp and swaps the
        message into the camera's slot. ``received_ns`` overrides the receipt time (monotonic
        clock), for frames scheduled on a timeline. Ignored while not :attr:`enabled`.
        """
        if not self.enabled:
            return
        now = self.clock.monotonic_ns()
        received = now if received_ns is None else received_ns
        wall = self.clock.now_ns() - (now - received)
        try:
            stamp = imaging.stamp_ns(msg.header)
        except Exception as err:  # noqa: BLE001 - a message without a usable header
            self._bad(camera, f'unusable header: {describe(err)}', received=True)
            return
        item = Pending(camera, msg, stamp, received, wall)
        replaced = self._slots.put(item)
        with self._lock:
            stats = self._stats[camera]
            stats.received += 1
            stats.replaced += replaced is not None
            stats.last_received_ns = max(stats.last_received_ns, received)
        if replaced is not None and self.outputs.dropped:
            self.outputs.dropped(camera, replaced.stamp_ns, 'replaced')

    # -- worker side --------------------------------------------------------------------

    def process_once(self, timeout: float | None = 0.0) -> int:
        """Take the next frame (or one per camera when batching) and publish its results.

        Args:
            timeout: Seconds to wait for a frame (None: until one arrives or :meth:`stop`).

        Returns:
            The number of frames taken (published, stale or bad).
        """
        taken = self._slots.take(every=self.batch, timeout=timeout)
        ready = [p for p in taken if not self._is_stale(p)]
        decoded = [d for d in (self._decode(p) for p in ready) if d is not None]
        groups: dict[tuple[tuple[int, ...], str], list[_Decoded]] = {}
        for d in decoded:
            groups.setdefault((d.frame.shape, d.encoding), []).append(d)
        for (shape, encoding), group in groups.items():
            self._segment_and_publish(group, shape, encoding)
        return len(taken)

    def prepare(self, height: int, width: int, batch: int = 1) -> None:
        """Build the segmenter for frames of ``height x width`` and run it once (warm-up).

        Otherwise the first frame of each shape pays for the build and the first-run
        overheads of the engine.

        Raises:
            SegnodeError: The engine cannot be built or loaded.
        """
        segmenter = self.engines.get(batch, height, width)
        segmenter.segment_batch([np.zeros((height, width, 3), np.uint8)] * batch)

    def report_bad(self, camera: str, reason: str) -> None:
        """Count a frame that never reached :meth:`submit` (it could not even be read)."""
        self._bad(camera, reason, received=True)

    def waiting(self) -> int:
        """Frames waiting in the slots (at most one per camera)."""
        return self._slots.waiting()

    def _is_stale(self, p: Pending) -> bool:
        if not self.max_age_ns or self.clock.now_ns() - p.stamp_ns <= self.max_age_ns:
            return False
        with self._lock:
            self._stats[p.camera].stale += 1
        if self.outputs.dropped:
            self.outputs.dropped(p.camera, p.stamp_ns, 'stale')
        return True

    def _decode(self, p: Pending) -> _Decoded | None:
        t0 = self.clock.monotonic_ns()
        try:
            frame, encoding = self.decode(p.msg)
        except Exception as err:  # noqa: BLE001 - any bad frame is counted, never fatal
            self._bad(p.camera, describe(err))
            return None
        return _Decoded(p, frame, encoding, t0, self.clock.monotonic_ns())

    def decode(self, msg: Any) -> tuple[np.ndarray, str]:
        """The engine frame of an Image or CompressedImage: the only way a frame is decoded.

        The size the message declares is checked before any pixel is decoded, the decoded
        size after.

        Returns:
            ``(frame, encoding)`` as :func:`imaging.to_rgb_frame` gives them.

        Raises:
            Exception: Whatever makes the frame bad (its text is the bad-frame reason).
        """
        self.check_size(*imaging.declared_size(msg), verb='declares')
        frame, encoding = imaging.to_rgb_frame(msg)
        self.check_size(frame.shape[0], frame.shape[1])
        return frame, encoding

    def check_size(self, height: int, width: int, verb: str = 'is') -> None:
        """Refuse a frame size outside ``[MIN_SIDE, max_side]``.

        Args:
            height: Frame height.
            width: Frame width.
            verb: 'declares' for the size a header claims, 'is' for a decoded frame's.

        Raises:
            SegnodeError: The size, and the limit it breaks.
        """
        if height > self.max_side or width > self.max_side:
            raise SegnodeError(
                f'frame {verb} {width}x{height}, over max_frame_side {self.max_side} '
                '(raise max_frame_side to accept it)'
            )
        if height < MIN_SIDE or width < MIN_SIDE:
            raise SegnodeError(
                f"frame {verb} {width}x{height}, under the network's minimum {MIN_SIDE}x{MIN_SIDE}"
            )

    def _bad(self, camera: str, reason: str, *, received: bool = False) -> None:
        reason = clip(reason, MAX_REASON)  # it may quote a message's fields: one short line
        with self._lock:
            stats = self._stats.get(camera)
            if stats is not None:
                stats.bad += 1
                stats.received += received
        if self.outputs.bad_frame:
            self.outputs.bad_frame(camera, reason)

    def _segment_and_publish(
        self, group: list[_Decoded], shape: tuple[int, ...], encoding: str
    ) -> None:
        try:
            segmenter = self.engines.ready(len(group), shape[0], shape[1])
            if segmenter is None:
                for d in group:
                    self._drop_building(d.pending)
                return
            t_infer = self.clock.monotonic_ns()  # an engine built on a first frame is not timed
            result = segmenter.segment_batch([d.frame for d in group], encoding)
            masks = result.masks
            confidences = getattr(result, 'confidences', None)
        except SegnodeError as err:
            for d in group:
                self._bad(d.pending.camera, describe(err))
            return
        except Exception as err:  # noqa: BLE001 - e.g. CUDA out of memory: drop, keep serving
            for d in group:
                self._bad(d.pending.camera, f'segmentation failed: {describe(err)}')
            return
        t_done = self.clock.monotonic_ns()
        for i, (d, mask) in enumerate(zip(group, masks)):
            try:
                confidence = None if confidences is None else confidences[i]
                self._publish(d, mask, confidence, t_infer, t_done)
            except Exception as err:  # noqa: BLE001 - one failing output must not stop the rest
                self._bad(d.pending.camera, f'publishing failed: {describe(err)}')

    def _publish(
        self,
        d: _Decoded,
        mask: np.ndarray,
        confidence: np.ndarray | None,
        t_infer: int,
        t_done: int,
    ) -> None:
        p, out, clock = d.pending, self.outputs, self.clock
        header = p.msg.header
        t_post = clock.monotonic_ns()
        color = None
        if out.color and out.want_color(p.camera):
            color = imaging.colorize(mask, self._lut)
        t_pub = clock.monotonic_ns()
        if out.labels:
            out.labels(p.camera, header, mask)
        if out.compressed_labels and out.want_compressed(p.camera):
            self._png_encoder().submit(p.camera, header, mask)
        if out.confidence and confidence is not None and out.want_confidence(p.camera):
            out.confidence(p.camera, header, confidence)
        if out.color and color is not None:
            out.color(p.camera, header, color)
        t_end = clock.monotonic_ns()
        with self._lock:
            stats = self._stats[p.camera]
            stats.processed += 1
            stats.recent_total_ms.append((t_end - p.received_ns) * _MS)
            stats.recent_publish_ns.append(t_end)
            counts = (stats.received, stats.processed, stats.dropped, stats.bad)
        metrics = FrameMetrics(
            t_recv_ms=p.received_wall_ns * _MS,
            queue_wait_ms=(d.t_take - p.received_ns) * _MS,
            preprocess_ms=(d.t_decoded - d.t_take) * _MS,
            infer_ms=(t_done - t_infer) * _MS,
            postprocess_ms=(t_pub - t_post) * _MS,
            publish_ms=(t_end - t_pub) * _MS,
            total_ms=(t_end - p.received_ns) * _MS,
            pipeline_latency_ms=(clock.now_ns() - p.stamp_ns) * _MS,
            received_total=counts[0],
            processed_total=counts[1],
            dropped_total=counts[2],
            bad_total=counts[3],
            labels_png_ms=self._png.encode_ms(p.camera) if self._png else 0.0,
        )
        if out.metrics:
            out.metrics(p.camera, header, metrics)
        if out.result:
            out.result(
                FrameResult(
                    p.camera, header, p.stamp_ns, d.frame, d.encoding, mask, metrics, confidence
                )
            )

    def _png_encoder(self) -> PngEncoder:
        if self._png is None:
            assert self.outputs.compressed_labels is not None
            self._png = PngEncoder(self.outputs.compressed_labels, self._png_failed)
        return self._png

    def _png_failed(self, camera: str, reason: str) -> None:
        """A compressed mask that could not be sent: said, not counted (its frame was)."""
        if self.outputs.bad_frame:
            self.outputs.bad_frame(camera, reason)

    # -- the worker thread --------------------------------------------------------------

    def start(self) -> None:
        """Run :meth:`process_once` on a worker thread until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._slots.reopen()
        self._thread = threading.Thread(target=self._run, name='segnode-worker', daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.process_once(timeout=0.1)
        except BaseException as err:  # noqa: BLE001 - the last guard: say why the worker stopped
            self.failure = describe(err)

    def stop(self) -> None:
        """Stop the worker thread and discard frames still waiting (not counted as drops)."""
        self._stop.set()
        self._slots.close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._slots.clear()
        if self._png is not None:  # after the worker: nothing submits to it any more
            self._png.close()
            self._png = None

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the compressed masks handed to the encoder are published."""
        return self._png is None or self._png.flush(timeout)

    @property
    def building(self) -> bool:
        """Whether a background build is still running (or waiting for its turn)."""
        return self.engines.building

    @property
    def engines_evicted(self) -> int:
        """Engines dropped to stay within ``max_engines``."""
        return self.engines.evicted

    @property
    def running(self) -> bool:
        """Whether the worker thread runs (false once it has stopped on an error)."""
        return self._thread is not None and self._thread.is_alive()

    def segmenters(self) -> list[SegmentBatch]:
        """The segmenters built so far (one per frame shape and batch)."""
        return self.engines.segmenters()

    def stats(self) -> dict[str, CameraStats]:
        """A snapshot of every camera's counts and recent latencies."""
        with self._lock:
            return {cam: s.snapshot() for cam, s in self._stats.items()}

    def release(self) -> None:
        """Forget the segmenters (the node's cleanup frees their GPU memory afterwards).

        A background build still running is left to finish on its own thread; its engine is
        dropped.
        """
        self.stop()
        self.engines.release()

    def _drop_building(self, p: Pending) -> None:
        with self._lock:
            self._stats[p.camera].building += 1
        if self.outputs.dropped:
            self.outputs.dropped(p.camera, p.stamp_ns, 'engine building')


@dataclass(frozen=True)
class _Decoded:
    pending: Pending
    frame: np.ndarray
    encoding: str
    t_take: int
    t_decoded: int
