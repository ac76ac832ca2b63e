"""Memory under overload: 3 cameras at 30 Hz into the SegmentationService against a slow model.

Three producer threads create a fresh rgb8 message per frame (as a DDS layer does) and submit
it from their own thread, as subscription callbacks do; the service's worker thread runs a
model that takes ``--model-ms`` per frame, so most frames are replaced in their slot and
dropped. The resident set size is sampled every few seconds; a leak of frames, masks,
metrics or timing windows would show as growth. Reports RSS after the warm-up and at the end,
the least-squares slope, the frame counts, and a plot.

    .venv/bin/python bench/overload_memory.py --minutes 10 \
        --json bench/results/overload_memory.json --plot bench/results/overload_memory.png
"""

from __future__ import annotations

import argparse
from array import array
from pathlib import Path
import threading
import time
from types import SimpleNamespace
from typing import Any

import numpy as np

from segnode.data.labels import CAMVID
from segnode.files import write_json
from segnode.pipeline import imaging
from segnode.pipeline.service import Outputs, SegmentationService

CAMERAS = ('front', 'left', 'right')


def rss_mb() -> float:
    """Resident set size of this process (Linux /proc)."""
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024
    raise RuntimeError('no VmRSS in /proc/self/status')


class SlowModel:
    """A model that takes ``seconds`` per call and returns an all-zero mask."""

    def __init__(self, seconds: float, h: int, w: int) -> None:
        self.seconds, self.mask = seconds, np.zeros((1, h, w), np.uint8)

    def segment_batch(self, frames: Any, encoding: str | None = None) -> Any:
        time.sleep(self.seconds)
        return SimpleNamespace(masks=self.mask.copy())  # a new mask per call, as an engine gives


def produce(
    service: SegmentationService, camera: str, h: int, w: int, stop: threading.Event
) -> None:
    period = 1 / 30
    template = np.random.default_rng(0).integers(0, 256, h * w * 3, dtype=np.uint8)
    next_t = time.perf_counter()
    k = 0
    while not stop.is_set():
        data = array('B')
        data.frombytes(memoryview(template))  # a new buffer per message
        now = time.time_ns()
        stamp = SimpleNamespace(sec=now // 10**9, nanosec=now % 10**9)
        msg = SimpleNamespace(
            header=SimpleNamespace(stamp=stamp, frame_id=camera), height=h, width=w,
            encoding='rgb8', is_bigendian=0, step=w * 3, data=data,
        )  # fmt: skip
        service.submit(camera, msg)
        k += 1
        next_t += period
        time.sleep(max(0.0, next_t - time.perf_counter()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--minutes', type=float, default=10.0)
    parser.add_argument('--size', type=int, nargs=2, default=(1024, 2048), metavar=('H', 'W'))
    parser.add_argument('--model-ms', type=float, default=100.0)
    parser.add_argument('--sample-s', type=float, default=5.0)
    parser.add_argument('--warmup-s', type=float, default=30.0)
    parser.add_argument('--json', type=Path)
    parser.add_argument('--plot', type=Path)
    args = parser.parse_args()
    h, w = args.size
    published = [0]

    def labels(cam: str, header: Any, mask: np.ndarray) -> None:
        data = array('B')
        data.frombytes(memoryview(imaging.array_to_fields(mask, 'mono8').data))
        published[0] += 1

    outputs = Outputs(labels=labels, metrics=lambda cam, header, m: m.as_dict())
    model = SlowModel(args.model_ms / 1e3, h, w)
    service = SegmentationService(
        CAMERAS, lambda n, hh, ww: model, outputs, palette=CAMVID.palette
    )
    service.start()
    stop = threading.Event()
    producers = [
        threading.Thread(target=produce, args=(service, cam, h, w, stop), daemon=True)
        for cam in CAMERAS
    ]
    start = time.perf_counter()
    for t in producers:
        t.start()
    samples: list[tuple[float, float]] = []
    end = start + args.minutes * 60
    while (now := time.perf_counter()) < end:
        samples.append((now - start, rss_mb()))
        time.sleep(args.sample_s)
    stop.set()
    for t in producers:
        t.join()
    service.stop()
    stats = service.stats()
    after = [(t, m) for t, m in samples if t >= args.warmup_s]
    ts, ms = np.array([t for t, _ in after]), np.array([m for _, m in after])
    slope = float(np.polyfit(ts / 60, ms, 1)[0]) if len(after) > 2 else float('nan')
    doc = {
        'minutes': args.minutes,
        'size': [h, w],
        'model_ms': args.model_ms,
        'cameras': {
            cam: {'received': s.received, 'processed': s.processed, 'dropped': s.dropped}
            for cam, s in stats.items()
        },
        'rss_mb_after_warmup': float(ms[0]) if len(ms) else None,
        'rss_mb_end': float(ms[-1]) if len(ms) else None,
        'rss_mb_max': float(ms.max()) if len(ms) else None,
        'rss_slope_mb_per_min': slope,
        'end_over_start': float(ms[-1] / ms[0]) if len(ms) else None,
        'samples': samples,
    }
    for cam, s in doc['cameras'].items():
        print(
            f'{cam}: received {s["received"]}, processed {s["processed"]}, dropped {s["dropped"]}'
        )
    print(
        f'RSS after {args.warmup_s:g} s warm-up {doc["rss_mb_after_warmup"]:.1f} MB, end '
        f'{doc["rss_mb_end"]:.1f} MB (ratio {doc["end_over_start"]:.3f}), max '
        f'{doc["rss_mb_max"]:.1f} MB, slope {slope:+.3f} MB/min over {args.minutes:g} min'
    )
    if args.json:
        write_json(doc, args.json)
    if args.plot:
        import matplotlib

        matplotlib.use('Agg')
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.plot([t / 60 for t, _ in samples], [m for _, m in samples], marker='.')
        ax.axvline(args.warmup_s / 60, color='grey', linestyle=':', label='end of warm-up')
        ax.set_xlabel('minutes')
        ax.set_ylabel('RSS (MB)')
        ax.set_ylim(bottom=0)
        ax.set_title(f'3 cameras x 30 Hz {h}x{w} into a {args.model_ms:g} ms model')
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
