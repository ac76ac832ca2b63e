"""A seeded fuzz of the frame path: whatever a publisher sends, the service stays up.

About 2,000 generated Image and CompressedImage messages of every family a careless or
hostile publisher can produce go through one SegmentationService. Every valid frame must be
published at its own size with its own header, every malformed one counted as bad with a
one-line reason, and nothing may escape the worker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
import threading
import time
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest

from segnode.pipeline import imaging
from segnode.pipeline.scheduler import ManualClock
from segnode.pipeline.service import Outputs, SegmentationService

PALETTE = np.array([[0, 0, 0], [255, 255, 255]], np.uint8)
MAX_SIDE = 256


def _header(k: int) -> Any:
    return SimpleNamespace(stamp=SimpleNamespace(sec=k, nanosec=7), frame_id=f'cam{k}')


def _raw(k: int, fields: Any, **changes: Any) -> Any:
    return SimpleNamespace(header=_header(k), **{**vars(fields), **changes})


def _compressed(k: int, fmt: str, data: Any) -> Any:
    return SimpleNamespace(header=_header(k), format=fmt, data=data)


def _jpeg(rng: np.random.Generator, h: int, w: int) -> bytes:
    ok, data = cv2.imencode('.jpg', rng.integers(0, 256, (h, w, 3), np.uint8))
    assert ok
    return bytes(data)


def _claiming(data: bytes, marker: bytes, offset: int, h: int, w: int) -> bytes:
    """``data`` with the size after ``marker`` replaced: a JPEG SOF0 or PNG IHDR "bomb".

    JPEG stores height then width as big-endian u16, PNG width then height as big-endian u32.
    """
    out = bytearray(data)
    at = out.find(marker) + offset
    size = 2 if marker == b'\xff\xc0' else 4
    first, second = (h, w) if marker == b'\xff\xc0' else (w, h)
    out[at : at + size] = first.to_bytes(size, 'big')
    out[at + size : at + 2 * size] = second.to_bytes(size, 'big')
    return bytes(out)


def _dense_png(png: bytes) -> bytes:
    """A 40x48 grey PNG whose IHDR claims 256x256 RGBA at 16 bits: more than deflate can hold."""
    out = bytearray(_claiming(png, b'IHDR', 4, 256, 256))
    at = out.find(b'IHDR') + 12
    out[at : at + 2] = bytes([16, 6])  # bit depth, colour type
    return bytes(out)


class Hostile:
    """An Image-like object whose fields raise when they are read."""

    header = _header(0)
    height = width = 40
    is_bigendian = 0
    step = 120

    @property
    def encoding(self) -> str:
        raise RuntimeError('a field that cannot be read')

    @property
    def data(self) -> bytes:
        raise RuntimeError('a field that cannot be read')


Case = tuple[Any, tuple[int, int] | None]  # message, and its (h, w) when it is valid


def _valid(rng: np.random.Generator, k: int) -> Case:
    h, w = (int(v) for v in rng.integers(32, 97, 2))
    family = k % 8
    if family < 6:
        encoding = ('rgb8', 'bgr8', 'mono8', 'rgba8', 'bgra8', 'mono16')[family]
        channels, dtype = imaging.ENCODINGS[encoding]
        shape = (h, w) if channels == 1 else (h, w, channels)
        array = rng.integers(0, np.iinfo(dtype).max, shape).astype(dtype)
        fields = imaging.array_to_fields(array, encoding)
        pad = int(rng.integers(0, 3)) * dtype.itemsize
        if pad:  # rows padded by step, as some drivers send them
            rows = fields.data.reshape(h, -1)
            padded = np.concatenate([rows, np.zeros((h, pad), np.uint8)], axis=1)
            return _raw(k, fields, step=fields.step + pad, data=padded.reshape(-1)), (h, w)
        data: Any = fields.data if k % 3 else bytes(fields.data)  # numpy or bytes
        return _raw(k, fields, data=data), (h, w)
    if family == 6:
        return _compressed(k, 'jpeg', np.frombuffer(_jpeg(rng, h, w), np.uint8)), (h, w)
    ok, png = cv2.imencode('.png', rng.integers(0, 256, (h, w), np.uint8))
    fmt = 'jpeg' if k % 16 == 15 else 'rgb8; png compressed mono8'  # the bytes decide the codec
    return _compressed(k, fmt, bytes(png)), (h, w)


def _malformed(rng: np.random.Generator, k: int) -> Any:
    fields = imaging.array_to_fields(np.zeros((40, 48, 3), np.uint8), 'rgb8')
    jpeg = _jpeg(rng, 40, 48)
    ok, png = cv2.imencode('.png', np.zeros((40, 48), np.uint8))
    assert ok
    strided = memoryview(bytes(fields.data) * 2)[::2]
    families: list[Callable[[], Any]] = [
        lambda: _raw(k, fields, encoding='yuv422_weird'),
        lambda: _raw(k, fields, height=0),
        lambda: _raw(k, fields, width=-5),
        lambda: _raw(k, fields, step=10),
        lambda: _raw(k, fields, step=fields.step + 1),
        lambda: _raw(k, fields, data=fields.data[: int(rng.integers(0, fields.data.size))]),
        lambda: _raw(k, fields, data=None),
        lambda: _raw(k, fields, data={'a': 1}),
        lambda: _raw(k, fields, data='not bytes'),
        lambda: _raw(k, fields, data=[300] * fields.data.size),
        lambda: _raw(k, fields, data=np.array([object()] * 8)),
        lambda: _raw(k, fields, data=strided[:100]),
        lambda: _raw(k, fields, height=8000, width=8000, step=24000),  # too large to accept
        lambda: _raw(k, fields, height=8, width=8, step=24),  # below the network's minimum
        lambda: _raw(k, fields, height='forty'),
        lambda: _compressed(k, 'jpeg', rng.integers(0, 256, int(rng.integers(0, 600)), np.uint8)),
        lambda: _compressed(k, 'jpeg', jpeg[: int(rng.integers(0, len(jpeg) // 2))]),
        lambda: _compressed(k, 'jpeg', _claiming(jpeg, b'\xff\xc0', 5, 65000, 65000)),
        lambda: _compressed(k, 'jpeg', _claiming(jpeg, b'\xff\xc0', 5, 30000, 30000)),
        lambda: _compressed(k, 'png', _claiming(bytes(png), b'IHDR', 4, 30000, 30000)),
        lambda: _compressed(k, 'png', _dense_png(bytes(png))),
        lambda: _compressed(k, 'png', b'GIF89a' + bytes(40)),
        lambda: _compressed(k, 'jpeg', b''),
        lambda: _compressed(k, 'jpeg', None),
        lambda: _compressed(k, 'jpeg', _jpeg(rng, 16, 16)),  # valid but too small
        lambda: SimpleNamespace(header=None, format='jpeg', data=jpeg),  # no usable header
        Hostile,
    ]
    return families[k % len(families)]()


def generate(seed: int, count: int) -> Iterator[Case]:
    """``count`` messages: about half valid, half malformed, interleaved at random."""
    rng = np.random.default_rng(seed)
    for k in range(count):
        if rng.random() < 0.5:
            yield _valid(rng, k)
        else:
            yield _malformed(rng, k), None


class EchoSegmenter:
    """Masks of the frame's size: 1 where the first channel is bright, else 0."""

    def segment_batch(self, frames: Sequence[np.ndarray], encoding: str | None = None) -> Any:
        return SimpleNamespace(
            masks=np.stack([(f[..., 0] > 127).astype(np.uint8) for f in frames])
        )


def _service(published: list[tuple[Any, np.ndarray]], bad: list[str]) -> SegmentationService:
    outputs = Outputs(
        labels=lambda cam, header, mask: published.append((header, mask)),
        bad_frame=lambda cam, why: bad.append(why),
    )
    return SegmentationService(
        ['cam'],
        lambda n, h, w: EchoSegmenter(),
        outputs,
        palette=PALETTE,
        clock=ManualClock(),
        max_side=MAX_SIDE,
        max_engines=4,
    )


def test_two_thousand_fuzzed_frames_leave_the_service_serving() -> None:
    published: list[tuple[Any, np.ndarray]] = []
    bad: list[str] = []
    svc = _service(published, bad)
    cases = list(generate(seed=20261203, count=2000))
    valid = [(msg, size) for msg, size in cases if size is not None]
    for msg, _ in cases:
        svc.submit('cam', msg)  # never raises, whatever the message
        svc.process_once()  # never raises either: one frame at a time, nothing replaced
    assert len(published) == len(valid) and len(bad) == len(cases) - len(valid)
    for (header, mask), (msg, size) in zip(published, valid, strict=True):
        assert header is msg.header and mask.shape == size and mask.dtype == np.uint8
    assert all(reason and '\n' not in reason for reason in bad)
    stats = svc.stats()['cam']
    assert stats.bad == len(bad) and stats.processed == len(valid)
    assert stats.received == len(cases)
    assert len(svc.segmenters()) <= 4 and svc.engines_evicted > 0  # many shapes, a few kept
    joined = ' | '.join(bad)
    for expected in (
        'declares 65000x65000, over max_frame_side',
        'declares 30000x30000, over max_frame_side',
        'frame declares 8000x8000, over max_frame_side',
        "under the network's minimum",
        'image data must be bytes',
        'declares 256x256: a complete png of that size needs at least 438 bytes',
        'CompressedImage is not an image',
        'CompressedImage holds a GIF image',
        'no end-of-image marker',
        'unsupported image encoding',
        'unusable header',
        'RuntimeError: a field that cannot be read',
    ):
        assert expected in joined, expected


def test_the_worker_thread_survives_the_fuzz_and_stays_running() -> None:
    published: list[tuple[Any, np.ndarray]] = []
    bad: list[str] = []
    svc = _service(published, bad)
    cases = list(generate(seed=7, count=300))
    svc.start()
    try:
        for msg, _ in cases:
            svc.submit('cam', msg)
            deadline = time.monotonic() + 5.0
            while svc.waiting() and time.monotonic() < deadline:
                time.sleep(0.0005)
        deadline = time.monotonic() + 5.0
        while len(published) + len(bad) < len(cases) and time.monotonic() < deadline:
            time.sleep(0.001)
        assert svc.running and not svc.failure
    finally:
        svc.stop()
    assert len(published) + len(bad) == len(cases)
    assert len(published) == sum(size is not None for _, size in cases)


def test_a_worker_that_stops_on_an_error_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    svc = _service([], [])
    stopped = threading.Event()

    def broken(timeout: float | None = 0.0) -> int:
        stopped.set()
        raise MemoryError('out of memory in the worker')

    monkeypatch.setattr(svc, 'process_once', broken)
    svc.start()
    assert stopped.wait(5.0)
    deadline = time.monotonic() + 5.0
    while svc.running and time.monotonic() < deadline:
        time.sleep(0.001)
    assert not svc.running
    assert svc.failure == 'MemoryError: out of memory in the worker'
    svc.stop()


def test_engines_are_evicted_least_recently_used_first() -> None:
    built: list[tuple[int, int, int]] = []

    def factory(n: int, h: int, w: int) -> EchoSegmenter:
        built.append((n, h, w))
        return EchoSegmenter()

    svc = SegmentationService(
        ['cam'], factory, Outputs(), palette=PALETTE, clock=ManualClock(), max_engines=2
    )
    frame = imaging.array_to_fields(np.zeros((32, 32, 3), np.uint8), 'rgb8')
    for k, (h, w) in enumerate([(32, 32), (32, 64), (32, 32), (64, 32), (32, 32), (32, 64)]):
        fields = imaging.array_to_fields(np.zeros((h, w, 3), np.uint8), 'rgb8')
        svc.submit('cam', _raw(k, fields if (h, w) != (32, 32) else frame))
        svc.process_once()
    # 32x32 stays in use; 32x64 is evicted by 64x32 and built again at the end
    assert built == [(1, 32, 32), (1, 32, 64), (1, 64, 32), (1, 32, 64)]
    assert svc.engines_evicted == 2 and len(svc.segmenters()) == 2
