"""Segmenter on the eager backend: the frame path, encodings, batches, shapes and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segnode.config import EngineConfig
from segnode.engine.segmenter import Segmenter
from segnode.errors import ImageFormatError
from segnode.model import MFARANet
from segnode.model.deploy import FrameToMask
from segnode.synthetic import synthetic_street

H, W = 64, 96
EAGER = EngineConfig(backend='eager', device='cpu', precision='fp32', strict=True)


def _reference(model: MFARANet, frames: np.ndarray, **options: object) -> np.ndarray:
    graph = FrameToMask(model, **options).eval()  # type: ignore[arg-type]
    with torch.no_grad():
        out: np.ndarray = graph(torch.from_numpy(np.ascontiguousarray(frames))).numpy()
    return out


@pytest.fixture(scope='module')
def segmenter(model: MFARANet) -> Segmenter:
    return Segmenter.build(model, EAGER, height=H, width=W)


def test_uint8_frame_to_uint8_mask_at_frame_resolution(
    segmenter: Segmenter, model: MFARANet, frame: np.ndarray
) -> None:
    result = segmenter.segment(frame)
    assert result.mask.dtype == np.uint8 and result.mask.shape == (H, W)
    assert int(result.mask.max()) < 11
    agreement = (result.mask == _reference(model, frame[None])[0]).mean()
    assert agreement >= 0.999


def test_timings_cover_every_stage(segmenter: Segmenter, frame: np.ndarray) -> None:
    t = segmenter.segment(frame).timings
    stages = (t.upload_ms, t.infer_ms, t.download_ms)
    assert all(s >= 0 for s in stages)
    assert t.total_ms >= t.infer_ms and t.host_ms == pytest.approx(t.total_ms - t.infer_ms)


def test_report_records_the_gate(segmenter: Segmenter) -> None:
    report = segmenter.report
    assert report.backend == 'eager' and report.precision == 'fp32'
    assert report.parity['passed'] and report.parity['agreement'] >= 0.995
    assert report.parity['confident_flips'] == 0
    assert report.parity['source'] == 'synthetic'  # engine.parity_images is unset
    assert [(a.backend, a.ok) for a in report.attempts] == [('eager fp32', True)]


def test_bgr_frames_give_the_same_mask(segmenter: Segmenter, frame: np.ndarray) -> None:
    rgb = segmenter.segment(frame).mask
    bgr = segmenter.segment(np.ascontiguousarray(frame[..., ::-1]), encoding='bgr8').mask
    assert np.array_equal(rgb, bgr)


def test_bgr_engine_takes_bgr_frames(model: MFARANet, frame: np.ndarray) -> None:
    config = EngineConfig(backend='eager', device='cpu', precision='fp32', strict=True, bgr=True)
    seg = Segmenter.build(model, config, height=H, width=W)
    assert seg.encoding == 'bgr8'
    bgr = np.ascontiguousarray(frame[..., ::-1])
    assert (seg.segment(bgr).mask == _reference(model, frame[None])[0]).mean() >= 0.999


def test_strided_frame_view_like_a_padded_ros_step(
    segmenter: Segmenter, frame: np.ndarray
) -> None:
    padded = np.zeros((H, W + 8, 3), np.uint8)
    padded[:, :W] = frame
    view = padded[:, :W]
    assert not view.flags.c_contiguous
    assert np.array_equal(segmenter.segment(view).mask, segmenter.segment(frame).mask)


def test_batch_of_cameras(model: MFARANet) -> None:
    seg = Segmenter.build(model, EAGER, height=H, width=W, batch=2)
    frames = [synthetic_street(H, W, seed=1), synthetic_street(H, W, seed=2)]
    result = seg.segment_batch(frames)
    assert result.masks.shape == (2, H, W) and result.masks.dtype == np.uint8
    stacked = seg.segment_batch(np.stack(frames)).masks
    assert np.array_equal(result.masks, stacked)
    assert (stacked == _reference(model, np.stack(frames))).mean() >= 0.999


def test_fixed_network_input_size_returns_masks_at_frame_size(model: MFARANet) -> None:
    config = EngineConfig(
        backend='eager', device='cpu', precision='fp32', strict=True, input_size=(64, 64)
    )
    seg = Segmenter.build(model, config, height=96, width=128)
    frame = synthetic_street(96, 128, seed=4)
    mask = seg.segment(frame).mask
    assert mask.shape == (96, 128)
    reference = _reference(model, frame[None], input_size=(64, 64))[0]
    assert (mask == reference).mean() >= 0.999


@pytest.mark.parametrize(
    ('frames', 'message'),
    [
        (np.zeros((H, W, 3), np.float32), 'expected uint8'),
        (np.zeros((H, W), np.uint8), r'expected \(N, H, W, 3\) frames'),
        (np.zeros((H, W, 4), np.uint8), 'expected uint8 \\(H, W, 3\\)'),
        (
            np.zeros((H + 32, W, 3), np.uint8),
            'frames are 96x96 but the engine was built for 64x96',
        ),
    ],
)
def test_bad_frames_are_refused(segmenter: Segmenter, frames: np.ndarray, message: str) -> None:
    with pytest.raises(ImageFormatError, match=message):
        segmenter.segment(frames)


def test_wrong_batch_and_encoding_are_refused(segmenter: Segmenter, frame: np.ndarray) -> None:
    with pytest.raises(ImageFormatError, match='batch 2 but the engine was built for batch 1'):
        segmenter.segment_batch([frame, frame])
    with pytest.raises(ImageFormatError, match="unsupported encoding 'mono8'"):
        segmenter.segment(frame, encoding='mono8')
