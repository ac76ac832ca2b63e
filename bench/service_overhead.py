"""Per-frame CPU cost of the SegmentationService, inference excluded (node issue target 1.5 ms).

Runs the node's data path on one thread for 1024x2048 rgb8 frames: submit (header read and
slot swap), decode (zero-copy view of the message buffer), a zero-cost model returning a
precomputed mask, the labels message built the way the adapter builds it (``array('B')``
filled from the mask buffer), and the metrics mapping. Side by side in the same run: the same
path with the colour mask on, and a bare ``memcpy`` of one mask (the floor of any publish).

    .venv/bin/python bench/service_overhead.py [--frames 300] [--size 1024 2048]
        [--json bench/results/service_overhead.json]
"""

from __future__ import annotations

import argparse
from array import array
from pathlib import Path
import platform
import statistics
import time
from types import SimpleNamespace
from typing import Any

import numpy as np

from segnode.data.labels import CAMVID
from segnode.files import write_json
from segnode.pipeline import imaging
from segnode.pipeline.service import Outputs, SegmentationService

TARGET_MS = 1.5


class ZeroCostModel:
    """Returns a precomputed mask: the service's cost is all that is timed."""

    def __init__(self, mask: np.ndarray) -> None:
        self.masks = mask[None]

    def segment_batch(self, frames: Any, encoding: str | None = None) -> Any:
        return self


def message(frame: np.ndarray, stamp_ns: int) -> Any:
    fields = imaging.array_to_fields(frame, 'rgb8')
    data = array('B')
    data.frombytes(memoryview(fields.data))  # rclpy delivers array('B')
    stamp = SimpleNamespace(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    header = SimpleNamespace(stamp=stamp, frame_id='front')
    return SimpleNamespace(**{**vars(fields), 'data': data, 'header': header})


def publish(header: Any, image: np.ndarray, encoding: str) -> None:
    """What segnode/ros/convert.py does before handing the message to rclpy."""
    fields = imaging.array_to_fields(image, encoding)
    data = array('B')
    data.frombytes(memoryview(fields.data))
    SimpleNamespace(header=header, height=fields.height, width=fields.width, data=data)


def run(frames: int, h: int, w: int, colour: bool) -> list[float]:
    rng = np.random.default_rng(0)
    mask = rng.integers(0, 11, (h, w), dtype=np.uint8)
    metrics: list[dict[str, float]] = []
    outputs = Outputs(
        labels=lambda cam, header, mask: publish(header, mask, 'mono8'),
        color=lambda cam, header, rgb: publish(header, rgb, 'rgb8'),
        metrics=lambda cam, header, m: metrics.append(m.as_dict()),
        want_color=lambda cam: colour,
    )
    service = SegmentationService(
        ['front'], lambda n, hh, ww: ZeroCostModel(mask), outputs, palette=CAMVID.palette
    )
    msgs = [message(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), i) for i in range(4)]
    times = []
    for i in range(frames + 20):
        msg = msgs[i % len(msgs)]
        t0 = time.perf_counter_ns()
        service.submit('front', msg)
        service.process_once()
        elapsed = (time.perf_counter_ns() - t0) * 1e-6
        if i >= 20:  # warm-up
            times.append(elapsed)
    assert len(metrics) == frames + 20
    return times


def memcpy_ms(h: int, w: int, n: int) -> list[float]:
    src = np.zeros((h, w), np.uint8)
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        data = array('B')
        data.frombytes(memoryview(src))
        out.append((time.perf_counter_ns() - t0) * 1e-6)
    return out


def summary(values: list[float]) -> dict[str, float]:
    q = statistics.quantiles(values, n=100)
    return {'p50': statistics.median(values), 'p95': q[94], 'mean': statistics.fmean(values)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--frames', type=int, default=300)
    parser.add_argument('--size', type=int, nargs=2, default=(1024, 2048), metavar=('H', 'W'))
    parser.add_argument('--json', type=Path)
    args = parser.parse_args()
    h, w = args.size
    rows = {
        'service, labels + metrics': summary(run(args.frames, h, w, colour=False)),
        'service, labels + colour + metrics': summary(run(args.frames, h, w, colour=True)),
        'memcpy of one mask into array(B)': summary(memcpy_ms(h, w, args.frames)),
    }
    print(f'{h}x{w} rgb8, {args.frames} frames, inference excluded (zero-cost model)')
    print(f'{"path":38s} {"p50 ms":>8s} {"p95 ms":>8s} {"p50/target":>11s}')
    for name, s in rows.items():
        print(f'{name:38s} {s["p50"]:8.3f} {s["p95"]:8.3f} {s["p50"] / TARGET_MS:11.2f}')
    if args.json:
        doc = {
            'size': [h, w],
            'frames': args.frames,
            'target_ms': TARGET_MS,
            'machine': platform.processor() or platform.machine(),
            'python': platform.python_version(),
            'results_ms': rows,
        }
        write_json(doc, args.json)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
