"""10,000 fuzzed frames through the SegmentationService: nothing escapes, memory stays flat.

The messages come from the seeded generator of test/pipeline/test_frame_fuzz.py (valid raw and
compressed frames of many sizes, and every malformed family: wrong fields, data that is not
bytes, truncated or random compressed data, JPEG/PNG headers claiming 30000x30000 or
65000x65000 pixels, frames below 32 px or above ``max_frame_side``, unreadable fields). The
engine is a stand-in that returns a mask of the frame's size, so the figures are those of the
frame path itself (decode, checks, slots, bookkeeping), not of a model. Counts processed, bad
and escaped (an exception out of ``submit`` or ``process_once``), and the resident set size
at the start, after the first 1,000 frames (the codecs' and allocator's one-off set-up) and at
the end.

    .venv/bin/python bench/frame_fuzz.py --frames 10000 --json bench/results/frame_fuzz.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import platform
import sys
import time
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'test' / 'pipeline'))

from test_frame_fuzz import EchoSegmenter, generate, MAX_SIDE, PALETTE  # noqa: E402

from segnode.files import write_json  # noqa: E402
from segnode.pipeline.scheduler import ManualClock  # noqa: E402
from segnode.pipeline.service import Outputs, SegmentationService  # noqa: E402

WARM_UP = 1000


def rss_mb() -> float:
    """Resident set size of this process (Linux /proc)."""
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024
    raise RuntimeError('no VmRSS in /proc/self/status')


def main() -> int:
    """Run the fuzz and print (and optionally write) the counts."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--frames', type=int, default=10_000)
    parser.add_argument('--seed', type=int, default=20261203)
    parser.add_argument('--json', type=Path)
    args = parser.parse_args()
    published: list[int] = []
    bad: list[str] = []
    outputs = Outputs(
        labels=lambda cam, header, mask: published.append(mask.size),
        bad_frame=lambda cam, why: bad.append(why),
    )
    svc = SegmentationService(
        ['cam'],
        lambda n, h, w: EchoSegmenter(),
        outputs,
        palette=PALETTE,
        clock=ManualClock(),
        max_side=MAX_SIDE,
    )
    escaped: list[str] = []
    rss_start = rss_mb()
    rss_warm = rss_start
    t0 = time.perf_counter()
    for k, (msg, _) in enumerate(generate(args.seed, args.frames)):
        if k == WARM_UP:
            rss_warm = rss_mb()  # codecs and allocator pools are set up by now
        try:
            svc.submit('cam', msg)
            svc.process_once()
        except Exception as err:  # noqa: BLE001 - counted: this is what the bench looks for
            escaped.append(f'{type(err).__name__}: {err}')
    seconds = time.perf_counter() - t0
    result: dict[str, Any] = {
        'frames': args.frames,
        'seed': args.seed,
        'processed': len(published),
        'bad': len(bad),
        'escaped': len(escaped),
        'engines_kept': len(svc.segmenters()),
        'engines_evicted': svc.engines_evicted,
        'rss_start_mb': round(rss_start, 1),
        f'rss_after_{WARM_UP}_mb': round(rss_warm, 1),
        'rss_end_mb': round(rss_mb(), 1),
        'seconds': round(seconds, 2),
        'reasons': sorted({r.split(':')[0][:60] for r in bad})[:20],
        'machine': f'{platform.processor() or platform.machine()}, {platform.python_version()}',
        'numpy': np.__version__,
    }
    print(json.dumps({k: v for k, v in result.items() if k != 'reasons'}, indent=2))
    if args.json:
        write_json(result, args.json)
    return 0 if not escaped else 1


if __name__ == '__main__':
    raise SystemExit(main())
