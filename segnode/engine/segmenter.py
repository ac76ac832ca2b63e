"""Segmenter: uint8 camera frames in, uint8 label masks out, with per-stage timings.

The host only moves uint8 (docs/engine.md, "The frame path"): a frame (H, W, 3), or a batch of
one frame per camera, is copied into a pinned staging buffer (CUDA) or wrapped without a copy
(CPU), uploaded asynchronously, segmented by the engine (normalisation, resize, model, upsample,
argmax and the uint8 cast all run on the device) and the uint8 mask is downloaded into a
pinned buffer and handed back as a numpy array at frame resolution. An engine built with the
confidence output (``engine.confidence``) hands back a uint8 confidence image the same way.

Timings per call: ``upload_ms`` (staging and host-to-device copy), ``infer_ms`` (the engine),
``download_ms`` (device-to-host copy and mask handling) and ``total_ms`` (wall clock of the
whole call). On a GPU the stages are measured with CUDA events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import time
from typing import Any

import numpy as np
import torch

from segnode.config import EngineConfig
from segnode.engine.base import Engine, EngineReport
from segnode.errors import ImageFormatError
from segnode.model.mfaranet import MFARANet

__all__ = [
    'ENCODINGS',
    'FrameTimings',
    'Segmentation',
    'Segmenter',
    'describe_engine',
    'describe_engines',
]

ENCODINGS = ('rgb8', 'bgr8')


@dataclass(frozen=True)
class FrameTimings:
    """Milliseconds spent per stage of one call (all frames of a batch together)."""

    upload_ms: float
    infer_ms: float
    download_ms: float
    total_ms: float

    @property
    def host_ms(self) -> float:
        """Everything but the engine: the host overhead of the frame path."""
        return self.total_ms - self.infer_ms


@dataclass(frozen=True)
class Segmentation:
    """Masks (N, H, W) uint8 at frame resolution (``mask`` is the first) and timings.

    ``confidences`` (N, H, W) uint8 (255 x the winning class's softmax probability) when the
    engine has the confidence output, else None.
    """

    masks: np.ndarray
    timings: FrameTimings
    confidences: np.ndarray | None = None

    @property
    def mask(self) -> np.ndarray:
        """The first (or only) frame's mask, (H, W) uint8."""
        first: np.ndarray = self.masks[0]
        return first


class _Buffers:
    """Pinned host and device buffers for one batch shape (CUDA only)."""

    def __init__(
        self, shape: tuple[int, int, int], device: torch.device, *, confidence: bool
    ) -> None:
        n, h, w = shape
        self.host_in = torch.empty((n, h, w, 3), dtype=torch.uint8, pin_memory=True)
        self.dev_in = torch.empty((n, h, w, 3), dtype=torch.uint8, device=device)
        self.host_out = torch.empty((n, h, w), dtype=torch.uint8, pin_memory=True)
        self.host_conf = (
            torch.empty((n, h, w), dtype=torch.uint8, pin_memory=True) if confidence else None
        )
        self.host_in_np = self.host_in.numpy()
        self.events = [
            torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
            for _ in range(4)
        ]


class Segmenter:
    """Segment frames with one engine.

    Build one with :meth:`build` (a model); the engine was built
    for one frame shape and batch (one engine per camera resolution) unless it is dynamic.

    Args:
        engine: A built engine.
        encoding: The encoding the engine's graph expects (``bgr8`` when built with
            ``bgr``); frames in the other encoding are channel-swapped on the device.
        report: How the engine was chosen (kept for logs and diagnostics).
    """

    def __init__(
        self, engine: Engine, *, encoding: str = 'rgb8', report: EngineReport | None = None
    ) -> None:
        if encoding not in ENCODINGS:
            raise ImageFormatError(f'encoding must be rgb8 or bgr8, got {encoding!r}')
        self.engine = engine
        self.encoding = encoding
        self.report = report or EngineReport(backend=engine.backend, device=str(engine.device))
        self.device = engine.device
        self._buffers: dict[tuple[int, int, int], _Buffers] = {}

    @classmethod
    def build(
        cls,
        model: MFARANet,
        config: EngineConfig,
        *,
        height: int,
        width: int,
        batch: int = 1,
        checkpoint_sha256: str = '',
    ) -> Segmenter:
        """Build (or load) and gate an engine for ``batch`` frames of ``height x width``.

        See :func:`segnode.engine.build.build_engine` for the arguments and errors.
        """
        from segnode.engine.build import build_engine

        engine, report = build_engine(
            model,
            config,
            height=height,
            width=width,
            batch=batch,
            checkpoint_sha256=checkpoint_sha256,
        )
        return cls(engine, encoding='bgr8' if config.bgr else 'rgb8', report=report)

    def segment(self, frame: np.ndarray, encoding: str | None = None) -> Segmentation:
        """Segment one frame (H, W, 3) uint8; ``encoding`` defaults to the engine's."""
        return self.segment_batch(
            frame[None] if isinstance(frame, np.ndarray) else frame, encoding
        )

    def segment_batch(
        self, frames: np.ndarray | Sequence[np.ndarray], encoding: str | None = None
    ) -> Segmentation:
        """Segment N frames (one per camera), as an (N, H, W, 3) array or N (H, W, 3) arrays.

        Frames may be non-contiguous views (a row ``step`` wider than ``3 * W``).

        Raises:
            ImageFormatError: Wrong dtype, layout, encoding, shape or batch for the engine.
        """
        start = time.perf_counter()
        shape = self._check(frames, encoding)
        swap = (encoding or self.encoding) != self.encoding
        if self.device.type == 'cuda':
            return self._run_cuda(frames, shape, swap, start)
        return self._run_cpu(frames, swap, start)

    def _check(self, frames: Any, encoding: str | None) -> tuple[int, int, int]:
        if encoding is not None and encoding not in ENCODINGS:
            raise ImageFormatError(f'unsupported encoding {encoding!r}; use rgb8 or bgr8')
        items = list(frames) if not isinstance(frames, np.ndarray) else None
        if items is not None:
            if not items:
                raise ImageFormatError('no frames to segment')
            first = items[0]
            for f in items:
                if not isinstance(f, np.ndarray) or f.shape != first.shape:
                    raise ImageFormatError('the frames of a batch must be arrays of one shape')
            n, dims, dtype = len(items), first.shape, first.dtype
        else:
            assert isinstance(frames, np.ndarray)
            if frames.ndim != 4:
                raise ImageFormatError(f'expected (N, H, W, 3) frames, got shape {frames.shape}')
            n, dims, dtype = frames.shape[0], frames.shape[1:], frames.dtype
        if dtype != np.uint8 or len(dims) != 3 or dims[2] != 3:
            raise ImageFormatError(
                f'expected uint8 (H, W, 3) frames (rgb8/bgr8), got {dtype} {tuple(dims)}'
            )
        why = self.engine.accepts(n, dims[0], dims[1])
        if why:
            raise ImageFormatError(why)
        return n, dims[0], dims[1]

    def _run_cpu(self, frames: Any, swap: bool, start: float) -> Segmentation:
        array = frames if isinstance(frames, np.ndarray) else np.stack(frames)
        batch = torch.from_numpy(np.ascontiguousarray(array))  # no copy when contiguous
        if swap:
            batch = batch.flip(-1).contiguous()
        t_up = time.perf_counter()
        masks, confidences = self.engine.outputs(batch)
        t_inf = time.perf_counter()
        out = masks.numpy()
        conf = None if confidences is None else confidences.numpy()
        end = time.perf_counter()
        timings = FrameTimings(
            upload_ms=(t_up - start) * 1e3,
            infer_ms=(t_inf - t_up) * 1e3,
            download_ms=(end - t_inf) * 1e3,
            total_ms=(end - start) * 1e3,
        )
        return Segmentation(out, timings, conf)

    def _run_cuda(
        self, frames: Any, shape: tuple[int, int, int], swap: bool, start: float
    ) -> Segmentation:
        buf = self._buffers.get(shape)
        if buf is None:
            buf = self._buffers[shape] = _Buffers(
                shape, self.device, confidence=self.engine.confidence
            )
        if isinstance(frames, np.ndarray):
            np.copyto(buf.host_in_np, frames)
        else:
            for i, frame in enumerate(frames):
                np.copyto(buf.host_in_np[i], frame)
        staged = time.perf_counter()
        ev = buf.events
        ev[0].record()
        buf.dev_in.copy_(buf.host_in, non_blocking=True)
        dev_in = buf.dev_in.flip(-1).contiguous() if swap else buf.dev_in
        ev[1].record()
        masks, confidences = self.engine.outputs(dev_in)
        ev[2].record()
        buf.host_out.copy_(masks, non_blocking=True)
        if buf.host_conf is not None and confidences is not None:
            buf.host_conf.copy_(confidences, non_blocking=True)
        ev[3].record()
        ev[3].synchronize()
        synced = time.perf_counter()
        out = buf.host_out.numpy().copy()  # the pinned buffer is reused by the next call
        conf = None if buf.host_conf is None else buf.host_conf.numpy().copy()
        end = time.perf_counter()
        timings = FrameTimings(
            upload_ms=(staged - start) * 1e3 + ev[0].elapsed_time(ev[1]),
            infer_ms=ev[1].elapsed_time(ev[2]),
            download_ms=ev[2].elapsed_time(ev[3]) + (end - synced) * 1e3,
            total_ms=(end - start) * 1e3,
        )
        return Segmentation(out, timings, conf)

    def __repr__(self) -> str:
        """The engine and the encoding."""
        return f'Segmenter({self.engine!r}, {self.encoding})'


def describe_engine(segmenter: Any) -> tuple[str, str]:
    """``('1x360x480', 'eager fp32 on cpu')``: the shape and the engine of a segmenter.

    Takes anything with ``engine`` and ``report`` attributes (stand-ins in tests too); what is
    missing reads ``?``. The node's diagnostics and the replay report both describe engines
    with it.
    """
    engine = getattr(segmenter, 'engine', None)
    report = getattr(segmenter, 'report', None)
    shape = 'x'.join(str(getattr(engine, k, '?')) for k in ('batch', 'height', 'width'))
    if getattr(engine, 'dynamic', False):
        shape += ' dynamic'
    backend = getattr(report, 'backend', '') or getattr(engine, 'backend', '?')
    precision = getattr(report, 'precision', '') or getattr(engine, 'precision', '?')
    device = getattr(report, 'device', '') or str(getattr(engine, 'device', '?'))
    return shape, f'{backend} {precision} on {device}'


def describe_engines(segmenters: Sequence[Any]) -> str:
    """Every engine in one line, and the backends refused on the way to the first one.

    E.g. ``eager fp32 on cpu (1x360x480); torch-compile not used: no C++ compiler``.
    """
    parts = [f'{what} ({shape})' for shape, what in map(describe_engine, segmenters)]
    for s in segmenters[:1]:
        refused = [a for a in getattr(getattr(s, 'report', None), 'attempts', []) if not a.ok]
        parts += [f'{a.backend} not used: {a.reason}' for a in refused]
    return '; '.join(parts)
