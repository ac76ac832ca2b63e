"""Confidence and compressed labels: the PNG round trip, the encoder thread, the service."""

from __future__ import annotations

from collections.abc import Sequence
import threading
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest

from segnode.pipeline import imaging
from segnode.pipeline.compressed import encode_png, PNG_FORMAT, PngEncoder
from segnode.pipeline.scheduler import ManualClock
from segnode.pipeline.service import FrameResult, Outputs, SegmentationService

PALETTE = np.array([[10, 20, 30], [40, 50, 60], [70, 80, 90]], np.uint8)


def _mask(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """Blocky class ids 0..10 with a few 255 (unlabelled) pixels, like a segmentation."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 11, (h // 8, w // 8), dtype=np.uint8)
    mask = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    mask[rng.integers(0, h, 20), rng.integers(0, w, 20)] = 255
    return mask


def test_the_format_is_image_transports_for_mono8() -> None:
    # compressed_image_transport: '<encoding>; png compressed ' and, for a non-colour
    # image, no target encoding after it
    assert PNG_FORMAT == 'mono8; png compressed '


def test_png_round_trip_keeps_every_class_id() -> None:
    mask = _mask()
    data = encode_png(mask)
    assert data[:8] == b'\x89PNG\r\n\x1a\n'
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.dtype == np.uint8 and decoded.shape == mask.shape
    np.testing.assert_array_equal(decoded, mask)
    assert len(data) < mask.nbytes / 5  # blocky masks compress well


def test_png_refuses_what_is_not_a_mask() -> None:
    with pytest.raises(ValueError, match=r'a PNG label mask is \(H, W\) uint8, got float32'):
        encode_png(np.zeros((4, 4), np.float32))


def test_the_encoder_publishes_on_its_own_thread_and_survives_a_bad_mask() -> None:
    published: list[tuple[str, Any, bytes, str]] = []
    failed: list[tuple[str, str]] = []

    def publish(camera: str, header: Any, data: bytes) -> None:
        published.append((camera, header, data, threading.current_thread().name))

    encoder = PngEncoder(publish, lambda cam, why: failed.append((cam, why)))
    encoder.submit('front', 'h0', np.zeros((4, 4, 2), np.uint8))  # not a mask
    assert encoder.flush()
    mask = _mask(seed=1)
    encoder.submit('front', 'h1', mask)
    assert encoder.flush()
    encoder.close()
    assert [(c, why.split(':')[0]) for c, why in failed] == [
        ('front', 'compressing labels failed')
    ]
    ((camera, header, data, thread),) = published
    assert (camera, header, thread) == ('front', 'h1', 'segnode-png')
    np.testing.assert_array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), -1), mask)
    assert encoder.encode_ms('front') > 0.0 and encoder.encode_ms('rear') == 0.0
    encoder.submit('front', 'h2', mask)  # closed: ignored
    assert len(published) == 1


def test_the_encoder_keeps_the_newest_mask_of_a_camera() -> None:
    gate, published = threading.Event(), []

    def publish(camera: str, header: Any, data: bytes) -> None:
        gate.wait(5)
        published.append((camera, header))

    encoder = PngEncoder(publish, lambda cam, why: None)
    encoder.submit('a', 0, _mask())  # taken at once, held in publish
    while not encoder._busy:  # noqa: SLF001 - wait until the thread holds the first mask
        threading.Event().wait(0.001)
    for header in (1, 2, 3):
        encoder.submit('a', header, _mask())
    encoder.submit('b', 9, _mask())
    gate.set()
    assert encoder.flush()
    encoder.close()
    assert published == [('a', 0), ('a', 3), ('b', 9)]
    assert encoder.replaced == 2


def _image(stamp_ns: int, value: int, h: int = 32, w: int = 48) -> Any:
    fields = imaging.array_to_fields(np.full((h, w, 3), value, np.uint8), 'rgb8')
    stamp = SimpleNamespace(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    return SimpleNamespace(header=SimpleNamespace(stamp=stamp, frame_id='cam'), **vars(fields))


class _WithConfidence:
    """Masks of a checker of ids; confidence = 100 + frame value (like an engine with it)."""

    def segment_batch(self, frames: Sequence[np.ndarray], encoding: str | None = None) -> Any:
        masks = np.stack([(np.indices(f.shape[:2]).sum(0) % 3).astype(np.uint8) for f in frames])
        conf = np.stack([np.full(f.shape[:2], 100 + f[0, 0, 0], np.uint8) for f in frames])
        return SimpleNamespace(masks=masks, confidences=conf)


class _Plain:
    """An engine without the confidence output."""

    def segment_batch(self, frames: Sequence[np.ndarray], encoding: str | None = None) -> Any:
        return SimpleNamespace(masks=np.zeros((len(frames), 32, 48), np.uint8))


def _service(want: bool, segmenter: Any = None) -> tuple[SegmentationService, dict[str, list]]:
    got: dict[str, list] = {'labels': [], 'confidence': [], 'png': [], 'results': []}
    outputs = Outputs(
        labels=lambda cam, h, mask: got['labels'].append((h.stamp.nanosec, mask)),
        confidence=lambda cam, h, conf: got['confidence'].append((h.stamp.nanosec, conf)),
        want_confidence=lambda cam: want,
        compressed_labels=lambda cam, h, data: got['png'].append((h.stamp.nanosec, data)),
        want_compressed=lambda cam: want,
        result=lambda r: got['results'].append(r),
    )
    svc = SegmentationService(['cam'], lambda n, h, w: segmenter or _WithConfidence(), outputs,
                              palette=PALETTE, clock=ManualClock())  # fmt: skip
    return svc, got


def test_the_service_publishes_confidence_and_compressed_labels_for_the_same_frames() -> None:
    svc, got = _service(want=True)
    for k in range(3):
        svc.submit('cam', _image(k + 1, value=k))
        svc.process_once()
        assert svc.flush()  # the encoder publishes on its own thread
    assert [s for s, _ in got['labels']] == [s for s, _ in got['confidence']] == [1, 2, 3]
    assert [s for s, _ in got['png']] == [1, 2, 3]
    for (_, mask), (_, data) in zip(got['labels'], got['png']):
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(decoded, mask)
    assert [int(c[0, 0]) for _, c in got['confidence']] == [100, 101, 102]
    results: list[FrameResult] = got['results']
    confidences = [r.confidence for r in results]
    assert [int(c[0, 0]) for c in confidences if c is not None] == [100, 101, 102]
    assert results[0].metrics.labels_png_ms == 0.0  # measured once the first one is encoded
    assert results[2].metrics.labels_png_ms > 0.0
    svc.stop()


def test_nothing_extra_is_made_while_nobody_listens() -> None:
    svc, got = _service(want=False)
    svc.submit('cam', _image(1, value=0))
    svc.process_once()
    assert svc.flush()
    assert len(got['labels']) == 1 and got['confidence'] == got['png'] == []
    assert svc._png is None  # noqa: SLF001 - no encoder thread was started


def test_an_engine_without_confidence_publishes_none() -> None:
    svc, got = _service(want=True, segmenter=_Plain())
    svc.submit('cam', _image(1, value=0))
    svc.process_once()
    assert svc.flush()
    assert len(got['labels']) == len(got['png']) == 1 and got['confidence'] == []
    assert got['results'][0].confidence is None
    svc.stop()
