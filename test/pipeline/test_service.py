"""SegmentationService: drops, latency bounds, bad frames, colour, batching, the worker thread.

Timing tests run on a ManualClock with a model of known cost, so every count is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
import threading
import time
import tracemalloc
from types import SimpleNamespace
from typing import Any

import hostile_frames
import numpy as np
import pytest

from segnode.errors import EngineBuildError
from segnode.pipeline import imaging
from segnode.pipeline.scheduler import ManualClock
from segnode.pipeline.service import FrameResult, Outputs, SegmentationService
from segnode.replay.timeline import Arrival, run_timeline

PERIOD_NS = 33_333_333  # 30 Hz
COST_NS = 50_000_000  # the model takes 50 ms
PALETTE = np.array([[10, 20, 30], [40, 50, 60], [70, 80, 90]], np.uint8)


def image(stamp_ns: int, h: int = 32, w: int = 48, encoding: str = 'rgb8', value: int = 0) -> Any:
    channels = 1 if encoding.startswith('mono') else 3
    fields = imaging.array_to_fields(
        np.full((h, w, channels) if channels > 1 else (h, w), value, np.uint8), encoding
    )
    stamp = SimpleNamespace(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    return SimpleNamespace(header=SimpleNamespace(stamp=stamp, frame_id='cam'), **vars(fields))


class FakeSegmenter:
    """Advances the clock by a fixed cost; the mask is (frame's first value) % 3."""

    def __init__(self, clock: ManualClock, cost_ns: int = COST_NS) -> None:
        self.clock, self.cost_ns, self.calls = clock, cost_ns, 0

    def segment_batch(self, frames: Sequence[np.ndarray], encoding: str | None = None) -> Any:
        self.calls += 1
        self.clock.advance(self.cost_ns)
        masks = np.stack([np.full(f.shape[:2], f[0, 0, 0] % 3, np.uint8) for f in frames])
        return SimpleNamespace(masks=masks)


class Recorder:
    """Keeps every result the service publishes."""

    def __init__(self) -> None:
        self.results: list[FrameResult] = []
        self.dropped: list[tuple[str, int, str]] = []
        self.bad: list[tuple[str, str]] = []
        self.colors: list[np.ndarray] = []
        self.labels: list[tuple[str, Any, np.ndarray]] = []

    def outputs(self, want_color: bool = False) -> Outputs:
        return Outputs(
            labels=lambda cam, header, mask: self.labels.append((cam, header, mask)),
            color=lambda cam, header, rgb: self.colors.append(rgb),
            want_color=lambda cam: want_color,
            bad_frame=lambda cam, why: self.bad.append((cam, why)),
            dropped=lambda cam, stamp, why: self.dropped.append((cam, stamp, why)),
            result=self.results.append,
        )


def service(
    cameras: Sequence[str], rec: Recorder, clock: ManualClock, **kwargs: Any
) -> tuple[SegmentationService, list[tuple[int, int, int]]]:
    shapes: list[tuple[int, int, int]] = []
    fake = FakeSegmenter(clock, kwargs.pop('cost_ns', COST_NS))

    def factory(n: int, h: int, w: int) -> FakeSegmenter:
        shapes.append((n, h, w))
        return fake

    svc = SegmentationService(
        cameras, factory, rec.outputs(kwargs.pop('want_color', False)), palette=PALETTE,
        clock=clock, **kwargs,
    )  # fmt: skip
    return svc, shapes


def camera_30hz(n: int, cameras: Sequence[str] = ('cam',)) -> list[Arrival]:
    return [Arrival(k * PERIOD_NS, cam, image(k * PERIOD_NS)) for k in range(n) for cam in cameras]


def test_30hz_against_50ms_drops_exactly_every_third_frame() -> None:
    # By hand: the worker finishes at 50, 100, 150, ... ms. Frame 3m arrives at
    # m * 99.999999 ms, just before the finish at 100m ms, so it replaces frame 3m-1, which
    # waited since 33.3(3m-1) ms. Frames 0..89: frames 2, 5, ..., 86 are dropped (29); the last
    # frame (89) has no successor and is processed: 61 processed.
    clock, rec = ManualClock(), Recorder()
    svc, _ = service(['cam'], rec, clock)
    waiting: list[int] = []
    arrivals = camera_30hz(90)
    run_timeline(
        svc,
        arrivals,
        wait_until=clock.advance_to,
        stop=lambda: waiting.append(svc.waiting()) is not None,
    )
    expected_drops = [k * PERIOD_NS for k in range(2, 89, 3)]
    assert [d[1] for d in rec.dropped] == expected_drops
    assert {d[2] for d in rec.dropped} == {'replaced'}
    assert len(rec.results) == 61
    stats = svc.stats()['cam']
    assert (stats.received, stats.processed, stats.dropped, stats.bad) == (90, 61, 29, 0)
    assert max(waiting) <= 1
    for r in rec.results:
        m = r.metrics
        assert m.infer_ms == pytest.approx(50.0)
        assert m.total_ms <= 50.0 + 33.334  # service time plus one period
        assert 0.0 <= m.queue_wait_ms <= 33.334
        assert m.total_ms == pytest.approx(m.queue_wait_ms + m.infer_ms)
        assert m.pipeline_latency_ms == pytest.approx(m.total_ms)  # stamps are arrival times
    last = rec.results[-1].metrics
    assert (last.processed_total, last.dropped_total, last.received_total) == (61, 29, 90)


def test_fast_model_drops_nothing() -> None:
    clock, rec = ManualClock(), Recorder()
    svc, _ = service(['cam'], rec, clock, cost_ns=10_000_000)
    run_timeline(svc, camera_30hz(30), wait_until=clock.advance_to)
    assert len(rec.results) == 30 and not rec.dropped
    assert all(r.metrics.total_ms == pytest.approx(10.0) for r in rec.results)


def test_three_cameras_round_robin_bounded_queue() -> None:
    clock, rec = ManualClock(), Recorder()
    cams = ('a', 'b', 'c')
    svc, _ = service(cams, rec, clock)
    waiting: list[int] = []
    run_timeline(
        svc, camera_30hz(60, cams), wait_until=clock.advance_to,
        stop=lambda: waiting.append(svc.waiting()) is not None,
    )  # fmt: skip
    assert max(waiting) <= 3
    stats = svc.stats()
    for cam in cams:
        s = stats[cam]
        assert s.received == 60 and s.processed + s.dropped == 60
    # Each camera is served every 3 x 50 ms = 150 ms: 2 s of frames give ~13 frames each.
    processed = [stats[c].processed for c in cams]
    assert max(processed) - min(processed) <= 1 and 12 <= min(processed) <= 15
    order = [r.camera for r in rec.results[:6]]
    assert order == ['a', 'b', 'c', 'a', 'b', 'c']
    # Age bound per camera: a frame waits at most one round (2 other cameras) plus a period.
    assert max(r.metrics.total_ms for r in rec.results) <= 3 * 50.0 + 33.4 + 1e-6


def test_stale_frames_are_dropped() -> None:
    clock, rec = ManualClock(10**12), Recorder()
    svc, _ = service(['cam'], rec, clock, max_age_ms=80.0)
    old = image(10**12 - 100_000_000)  # stamped 100 ms before it arrives
    fresh = image(10**12)
    svc.submit('cam', old)
    assert svc.process_once() == 1
    svc.submit('cam', fresh)
    svc.process_once()
    assert rec.dropped == [('cam', 10**12 - 100_000_000, 'stale')]
    assert [r.stamp_ns for r in rec.results] == [10**12]
    assert svc.stats()['cam'].stale == 1


def test_bad_frames_are_counted_and_the_service_goes_on() -> None:
    clock, rec = ManualClock(), Recorder()
    svc, _ = service(['cam'], rec, clock)
    broken = image(0)
    broken.encoding = 'yuv422'
    truncated = image(1)
    truncated.data = truncated.data[:10]
    for msg in (broken, truncated, image(2)):
        svc.submit('cam', msg)
        svc.process_once()
    assert [cam for cam, _ in rec.bad] == ['cam', 'cam']
    assert 'yuv422' in rec.bad[0][1] and 'bytes' in rec.bad[1][1]
    assert [r.stamp_ns for r in rec.results] == [2]
    assert svc.stats()['cam'].bad == 2


def test_engine_errors_count_as_bad_frames() -> None:
    rec = Recorder()

    def factory(n: int, h: int, w: int) -> Any:
        raise EngineBuildError(f'no engine for {h}x{w}; run segnode export')

    svc = SegmentationService(
        ['cam'], factory, rec.outputs(), palette=PALETTE, clock=ManualClock()
    )
    svc.submit('cam', image(0))
    svc.process_once()
    assert rec.bad == [('cam', 'no engine for 32x48; run segnode export')]


def test_colour_only_when_wanted_and_palette_exact() -> None:
    for wanted in (False, True):
        clock, rec = ManualClock(), Recorder()
        svc, _ = service(['cam'], rec, clock, want_color=wanted)
        svc.submit('cam', image(0, value=4))  # mask value 4 % 3 = 1
        svc.process_once()
        assert len(rec.colors) == int(wanted)
        cam, header, mask = rec.labels[0]
        assert header is rec.results[0].header  # the input header, not a copy or now()
        assert mask.shape == (32, 48) and mask.dtype == np.uint8
    assert (rec.colors[0] == PALETTE[1]).all()


def test_batching_segments_every_camera_in_one_call() -> None:
    clock, rec = ManualClock(), Recorder()
    svc, shapes = service(['a', 'b'], rec, clock, batch=True)
    svc.submit('a', image(0))
    svc.submit('b', image(0))
    assert svc.process_once() == 2
    assert shapes == [(2, 32, 48)]
    assert sorted(r.camera for r in rec.results) == ['a', 'b']
    svc.submit('a', image(1, h=64))  # another shape: its own segmenter
    svc.process_once()
    assert shapes == [(2, 32, 48), (1, 64, 48)]


def test_disabled_service_ignores_frames() -> None:
    clock, rec = ManualClock(), Recorder()
    svc, _ = service(['cam'], rec, clock)
    svc.enabled = False
    svc.submit('cam', image(0))
    assert svc.waiting() == 0 and svc.stats()['cam'].received == 0


def test_unknown_camera_is_a_key_error() -> None:
    svc, _ = service(['cam'], Recorder(), ManualClock())
    with pytest.raises(KeyError, match='unknown camera'):
        svc.submit('rear', image(0))


def test_worker_thread_survives_a_failing_callback() -> None:
    rec = Recorder()
    done = threading.Event()
    calls = []

    def labels(cam: str, header: Any, mask: np.ndarray) -> None:
        calls.append(header.stamp.nanosec)
        if len(calls) == 1:
            raise RuntimeError('publisher gone')
        done.set()

    outputs = rec.outputs()
    outputs.labels = labels
    svc = SegmentationService(
        ['cam'], lambda n, h, w: FakeSegmenter(ManualClock(), 0), outputs, palette=PALETTE
    )
    svc.start()
    try:
        svc.submit('cam', image(1))
        deadline = time.monotonic() + 10
        while len(calls) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        svc.submit('cam', image(2))
        assert done.wait(10)
    finally:
        svc.stop()
    assert not svc.running
    assert rec.bad == [('cam', 'publishing failed: RuntimeError: publisher gone')]
    assert svc.stats()['cam'].bad == 1
    assert calls == [1, 2]


def test_run_timeline_refuses_a_running_worker() -> None:
    svc, _ = service(['cam'], Recorder(), ManualClock())
    svc.start()
    try:
        with pytest.raises(RuntimeError, match='stop the worker'):
            run_timeline(svc, [], wait_until=lambda t: None)
    finally:
        svc.stop()


def test_a_new_shape_is_built_in_the_background_while_other_cameras_are_served() -> None:
    clock, rec = ManualClock(), Recorder()
    fake, release, building = FakeSegmenter(clock), threading.Event(), threading.Event()

    def factory(n: int, h: int, w: int) -> FakeSegmenter:
        if (h, w) == (64, 96):  # the new camera's engine takes a while to build
            building.set()
            assert release.wait(10)
        return fake

    svc = SegmentationService(['front', 'side'], factory, rec.outputs(), palette=PALETTE,
                              clock=clock, background_builds=True)  # fmt: skip
    svc.prepare(32, 48)  # front's engine, built at configure time
    svc.submit('side', image(1, 64, 96))
    svc.process_once()
    assert building.wait(10)  # on the builder thread, not this one
    (builder,) = [t for t in threading.enumerate() if t.name.startswith('segnode-build-')]
    assert builder.daemon  # the interpreter does not wait for it at exit (Ctrl-C)
    svc.submit('front', image(2))
    svc.process_once()
    assert [r.camera for r in rec.results] == ['front']
    assert rec.dropped == [('side', 1, 'engine building')]
    release.set()
    for _ in range(200):  # until the build has returned
        if not svc.building:
            break
        time.sleep(0.01)
    svc.submit('side', image(3, 64, 96))
    svc.process_once()
    assert [r.camera for r in rec.results] == ['front', 'side']
    stats = svc.stats()['side']
    assert (stats.building, stats.dropped, stats.processed) == (1, 1, 1)
    svc.release()


def test_a_failed_background_build_marks_the_frames_bad_with_its_reason() -> None:
    clock, rec = ManualClock(), Recorder()

    def factory(n: int, h: int, w: int) -> FakeSegmenter:
        raise EngineBuildError('tensorrt: no engine for 1x32x48')

    svc = SegmentationService(['front'], factory, rec.outputs(), palette=PALETTE, clock=clock,
                              background_builds=True)  # fmt: skip
    svc.submit('front', image(1))
    svc.process_once()
    for _ in range(200):
        if not svc.building:
            break
        time.sleep(0.01)
    svc.submit('front', image(2))
    svc.process_once()
    assert rec.dropped == [('front', 1, 'engine building')]
    assert rec.bad == [('front', 'tensorrt: no engine for 1x32x48')]
    svc.release()


def compressed(stamp_ns: int, fmt: str, data: Any) -> Any:
    stamp = SimpleNamespace(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    return SimpleNamespace(
        header=SimpleNamespace(stamp=stamp, frame_id='cam'), format=fmt, data=data
    )


def test_a_png_labelled_jpeg_is_processed() -> None:
    clock, rec = ManualClock(), Recorder()
    svc, shapes = service(['cam'], rec, clock)
    for k, fmt in enumerate(['jpeg', 'rgb8; jpeg compressed bgr8', 'jpg']):
        data = imaging.encode_compressed(np.full((40, 56, 3), k, np.uint8), 'rgb8', 'png')[1]
        svc.submit('cam', compressed(k, fmt, data))
        svc.process_once()
    assert not rec.bad and [r.mask.shape for r in rec.results] == [(40, 56)] * 3
    assert [int(r.mask[0, 0]) for r in rec.results] == [0, 1, 2]  # decoded losslessly


def test_hostile_compressed_frames_are_bad_with_clear_reasons_and_never_decoded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock, rec = ManualClock(), Recorder()
    svc, shapes = service(['cam'], rec, clock)
    hostile = [
        hostile_frames.jpeg_claiming(65000, 65000, nbytes=723),
        hostile_frames.jpeg_claiming(4096, 4096, nbytes=723),
        hostile_frames.random_bytes(700),
    ]
    decoded = hostile_frames.record_decodes(monkeypatch)
    tracemalloc.start()
    try:
        for k, data in enumerate(hostile):
            svc.submit('cam', compressed(k, 'jpeg', data))
            svc.process_once()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert not decoded and not shapes and peak < 1 << 20  # no pixel buffer, no engine
    reasons = [why for _, why in rec.bad]
    assert reasons[0] == (
        'frame declares 65000x65000, over max_frame_side 4096 (raise max_frame_side to accept it)'
    )
    assert reasons[1] == (
        'jpeg of 723 bytes declares 4096x4096: a complete jpeg of that size needs at least '
        '16384 bytes'
    )
    assert reasons[2].startswith("CompressedImage is not an image (format 'jpeg'): bytes start ")
    assert reasons[2].endswith(' ... (neither JPEG nor PNG)')
    assert svc.stats()['cam'].bad == 3 and not rec.results


def test_strings_from_a_message_are_clipped_in_bad_frame_reasons() -> None:
    clock, rec = ManualClock(), Recorder()
    svc, _ = service(['cam', 'other'], rec, clock)
    huge = 'x\n' * 5_000_000  # 10 MB, with control characters
    raw = image(0)
    raw.encoding = huge
    svc.submit('cam', raw)
    svc.submit('other', compressed(1, huge, bytes(700)))
    svc.report_bad('cam', huge)  # e.g. a bag reader's message
    while svc.process_once():
        pass
    assert len(rec.bad) == 3
    for _, why in rec.bad:
        assert len(why) < 400 and why.isprintable(), why[:100]
    reasons = sorted(why for _, why in rec.bad)
    assert reasons[0].startswith("CompressedImage is not an image (format 'x?x?x?")
    assert reasons[1].startswith("unsupported image encoding 'x?x?x?")
    assert reasons[2].startswith('x?x?x?') and reasons[2].endswith('... (10000000 characters)')
