"""How close legitimate JPEG and PNG files come to the byte floors segnode refuses below.

segnode refuses a CompressedImage with fewer bytes than a complete image of its declared size
needs (segnode/pipeline/image_header.py): the physical floors are 1 bit per 8x8 block for JPEG
and raw / 1032 for PNG, and segnode refuses only below half the JPEG floor and below raw / 1200.
This encodes the images that compress best -- all-black, all-white, flat grey and flat colour
frames -- and some that do not (CamVid frames, a gradient, noise) at several sizes, with every
encoder setting that shrinks them: OpenCV JPEG quality 1..100, optimised Huffman tables,
progressive, 4:2:0 and 4:4:4, colour and grey; Pillow JPEG quality 1 optimised and
progressive; OpenCV PNG compression 0..9 with each zlib strategy, colour, grey and bilevel;
Pillow PNG optimised in modes '1', 'P', 'L' and 'RGB' (4096x4096: flat frames only, PNG at
compression 9 only, no Pillow). For each file it records ``bytes / threshold`` (the headroom:
below 1.0 would be refused) and ``bytes / physical floor``, and prints the smallest per codec
and per content.

    .venv/bin/python bench/compressed_density.py --json bench/results/compressed_density.json
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
import io
import json
import os
from pathlib import Path
import platform
import sys
from typing import Any

import cv2
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from segnode.files import write_json  # noqa: E402
from segnode.pipeline.image_header import (  # noqa: E402
    DEFLATE_MAX_RATIO,
    JPEG_FLOOR_BLOCKS_PER_BYTE,
    read_header,
)

SIZES = ((360, 480), (1024, 2048), (4096, 4096))
QUALITIES = (1, 5, 10, 25, 50, 75, 90, 100)


def contents(h: int, w: int, camvid: list[Path]) -> Iterator[tuple[str, np.ndarray]]:
    """(name, BGR image) of the frames to encode at ``h x w``."""
    yield 'black', np.zeros((h, w, 3), np.uint8)
    yield 'white', np.full((h, w, 3), 255, np.uint8)
    yield 'grey', np.full((h, w, 3), 128, np.uint8)
    yield 'flat colour', np.full((h, w, 3), (200, 120, 30), np.uint8)
    if h * w > 1024 * 2048:
        return  # the large size only for the frames that compress best
    ramp = np.linspace(0, 255, w, dtype=np.float32)
    yield 'gradient', np.repeat(np.repeat(ramp[None, :, None], h, 0), 3, 2).astype(np.uint8)
    yield 'noise', np.random.default_rng(0).integers(0, 256, (h, w, 3), np.uint8)
    for path in camvid:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is not None:
            yield f'camvid {path.name}', cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)


def jpeg_files(image: np.ndarray) -> Iterator[tuple[str, bytes]]:
    """Every JPEG setting, through OpenCV and Pillow."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    for q in QUALITIES:
        for opt in (0, 1):
            for prog in (0, 1):
                for name, src in (('colour', image), ('grey', grey)):
                    samplings = (
                        (
                            cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420,
                            cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
                        )
                        if src.ndim == 3
                        else (cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420,)
                    )
                    for sf in samplings:
                        params = [cv2.IMWRITE_JPEG_QUALITY, q, cv2.IMWRITE_JPEG_OPTIMIZE, opt]
                        params += [cv2.IMWRITE_JPEG_PROGRESSIVE, prog]
                        params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, sf]
                        ok, data = cv2.imencode('.jpg', src, params)
                        assert ok
                        tag = f'opencv q{q} opt{opt} prog{prog} {name} sf{sf:x}'
                        yield tag, data.tobytes()
    if image.size >= 4096 * 4096 * 3:
        return
    rgb = Image.fromarray(image[..., ::-1].copy())
    for mode, src in (('colour', rgb), ('grey', rgb.convert('L'))):
        for prog in (False, True):
            out = io.BytesIO()
            src.save(out, 'jpeg', quality=1, optimize=True, progressive=prog)
            yield f'pillow q1 optimize prog{int(prog)} {mode}', out.getvalue()


def png_files(image: np.ndarray) -> Iterator[tuple[str, bytes]]:
    """Every PNG setting, through OpenCV and Pillow (only level 9 at 4096x4096)."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    strategies = {
        'default': cv2.IMWRITE_PNG_STRATEGY_DEFAULT,
        'filtered': cv2.IMWRITE_PNG_STRATEGY_FILTERED,
        'huffman': cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY,
        'rle': cv2.IMWRITE_PNG_STRATEGY_RLE,
        'fixed': cv2.IMWRITE_PNG_STRATEGY_FIXED,
    }
    for level in range(10) if image.size < 4096 * 4096 * 3 else (9,):
        for sname, strategy in strategies.items():
            for name, src in (('colour', image), ('grey', grey)):
                params = [cv2.IMWRITE_PNG_COMPRESSION, level, cv2.IMWRITE_PNG_STRATEGY, strategy]
                ok, data = cv2.imencode('.png', src, params)
                assert ok
                yield f'opencv level{level} {sname} {name}', data.tobytes()
        params = [cv2.IMWRITE_PNG_COMPRESSION, level, cv2.IMWRITE_PNG_BILEVEL, 1]
        ok, data = cv2.imencode('.png', grey, params)
        assert ok
        yield f'opencv level{level} bilevel', data.tobytes()
    if image.size >= 4096 * 4096 * 3:
        return
    rgb = Image.fromarray(image[..., ::-1].copy())
    for mode in ('1', 'P', 'L', 'RGB'):
        out = io.BytesIO()
        src = rgb.convert(mode) if mode != 'P' else rgb.quantize(16)
        src.save(out, 'png', optimize=True)
        yield f'pillow optimize mode {mode}', out.getvalue()


def physical_floor(codec: str, data: bytes, h: int, w: int) -> float:
    """The fewest bytes any complete file of this size can take (no safety margin)."""
    if codec == 'jpeg':
        return -(-w // 8) * -(-h // 8) / JPEG_FLOOR_BLOCKS_PER_BYTE
    depth, colour = data[24], data[25]  # the IHDR's bit depth and colour type
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
    return h * (1 + (w * channels * depth + 7) // 8) / DEFLATE_MAX_RATIO


def main() -> int:
    """Encode everything, print the smallest headroom per codec, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--camvid', type=Path, default=os.environ.get('SEGNODE_CAMVID_ROOT'))
    parser.add_argument('--camvid-frames', type=int, default=3)
    parser.add_argument('--json', type=Path)
    args = parser.parse_args()
    camvid = (
        sorted((args.camvid / 'val').glob('*.png'))[: args.camvid_frames] if args.camvid else []
    )
    worst: dict[str, dict[str, Any]] = {}
    files = 0
    for h, w in SIZES:
        for content, image in contents(h, w, camvid):
            for codec, encode in (('jpeg', jpeg_files), ('png', png_files)):
                for setting, data in encode(image):
                    header = read_header(np.frombuffer(data, np.uint8))
                    floor = physical_floor(codec, data, h, w)
                    assert header.codec == codec and (header.height, header.width) == (h, w)
                    files += 1
                    row = {
                        'size': f'{w}x{h}',
                        'content': content,
                        'setting': setting,
                        'bytes': len(data),
                        'floor': header.min_bytes,
                        'headroom': round(len(data) / header.min_bytes, 3),
                        'over_physical_floor': round(len(data) / floor, 4),
                        'bytes_per_kpixel': round(len(data) * 1000 / (h * w), 4),
                    }
                    for key in (codec, f'{codec} {content.split()[0]}'):
                        if key not in worst or row['headroom'] < worst[key]['headroom']:
                            worst[key] = row
    result = {
        'files': files,
        'camvid_frames': [p.name for p in camvid],
        'smallest_headroom': worst,
        'machine': f'{platform.processor() or platform.machine()}, {platform.python_version()}',
        'opencv': cv2.__version__,
        'pillow': Image.__version__,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        write_json(result, args.json)
    return 0 if all(r['headroom'] > 1 for r in worst.values()) else 1


if __name__ == '__main__':
    raise SystemExit(main())
