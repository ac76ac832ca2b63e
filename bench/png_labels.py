"""Size and encode time of ``~/<cam>/labels/compressed`` (lossless PNG) at 1024x2048.

Two real-looking masks, each resized (nearest) to the size: a CamVid ground-truth label, and
the bundled model's mask of the matching CamVid frame (segmented at 360x480). Each is encoded
with segnode's PNG options (``segnode.pipeline.compressed.png_params``) and with OpenCV's
default filters and strategy at zlib levels 3 and 9, ``--runs`` times, in turns; the median
time, the size and the ratio to the raw mono8 mask are printed, and every PNG is decoded and
compared with the mask.

    .venv/bin/python bench/png_labels.py --camvid ../shared/data/camvid --size 1024 2048 \
        --runs 20 --json bench/results/png_labels.json
"""

from __future__ import annotations

import argparse
from pathlib import Path
import statistics
import time

import cv2
import numpy as np
import torch

from segnode import load_model
from segnode.config import EngineConfig
from segnode.engine.bench import machine_description
from segnode.engine.segmenter import Segmenter
from segnode.files import write_json
from segnode.pipeline.assemble import DEFAULT_CHECKPOINT
from segnode.pipeline.compressed import png_params

# segnode's options (encode_png), then OpenCV's default filters and strategy at levels 3 and 9
VARIANTS = {
    'segnode: 1, RLE, no filter': png_params(),
    '3, default': [cv2.IMWRITE_PNG_COMPRESSION, 3],
    '9, default': [cv2.IMWRITE_PNG_COMPRESSION, 9],
}


def main() -> None:
    """Build the masks, encode, check, print and optionally save."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--camvid', required=True, help='CamVid root (val, valannot)')
    parser.add_argument('--size', type=int, nargs=2, default=(1024, 2048))
    parser.add_argument('--runs', type=int, default=20)
    parser.add_argument('--json', default='')
    args = parser.parse_args()
    height, width = args.size
    label_path = sorted((Path(args.camvid) / 'valannot').glob('*.png'))[0]
    image_path = Path(args.camvid) / 'val' / label_path.name
    label = cv2.imread(str(label_path), cv2.IMREAD_UNCHANGED)
    image = cv2.cvtColor(cv2.imread(str(image_path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    engine = EngineConfig(backend='eager', device='cpu', precision='fp32', parity_gate=False)
    seg = Segmenter.build(load_model(str(DEFAULT_CHECKPOINT)), engine, height=360, width=480)
    predicted = seg.segment(cv2.resize(image, (480, 360), interpolation=cv2.INTER_AREA)).mask
    masks = {f'CamVid label {label_path.name}': label, 'bundled model mask': predicted}
    rows = []
    for name, small in masks.items():
        mask = cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST)
        times: dict[str, list[float]] = {level: [] for level in VARIANTS}
        data: dict[str, bytes] = {}
        for _ in range(args.runs):  # the variants in turns, so load changes hit them alike
            for level, params in VARIANTS.items():
                start = time.perf_counter()
                ok, encoded = cv2.imencode('.png', mask, params)
                times[level].append((time.perf_counter() - start) * 1e3)
                data[level] = encoded.tobytes()
        for level in VARIANTS:
            decoded = cv2.imdecode(np.frombuffer(data[level], np.uint8), cv2.IMREAD_UNCHANGED)
            assert np.array_equal(decoded, mask), 'PNG round trip changed the mask'
            rows.append({'mask': name, 'level': level, 'bytes': len(data[level]),
                         'ratio': mask.nbytes / len(data[level]),
                         'encode_ms_p50': statistics.median(times[level]),
                         'encode_ms_min': min(times[level]),
                         'classes': int(len(np.unique(mask)))})  # fmt: skip
    print(f'{height}x{width} mono8 = {height * width} bytes raw; {args.runs} encodes each')
    print('| mask | zlib level, options | PNG bytes | smaller by | encode p50 ms | min ms |')
    print('|---|---|---|---|---|---|')
    for r in rows:
        print(
            f'| {r["mask"]} ({r["classes"]} ids) | {r["level"]} | {r["bytes"]} | '
            f'{r["ratio"]:.0f}x | {r["encode_ms_p50"]:.2f} | {r["encode_ms_min"]:.2f} |'
        )
    if args.json:
        doc = {'args': vars(args), 'rows': rows, 'opencv': cv2.__version__,
               'machine': machine_description(torch.device('cpu'))}  # fmt: skip
        write_json(doc, args.json)


if __name__ == '__main__':
    main()
