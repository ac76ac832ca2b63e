"""How far the confidence image moves under camera noise and under reduced precision.

Sets ``engine.max_confidence_diff`` the way ``tie_margin`` was set (docs/engine.md, "How the
thresholds were set"): against what the camera itself does. On the given frames, the
confidence of eager fp32 (``round(255 x`` the winning softmax probability``)``) is compared with

- the same engine on the frames with ±1 grey level of uniform noise (the noise floor);
- each ``--precisions`` engine (eager mixed bf16, onnxruntime int8, ...) on the clean frames;

and the absolute differences are summarised in grey levels (p50 / p99 / p99.9 / max).

    .venv/bin/python bench/confidence_drift.py --images ../shared/data/camvid/val \
        --size 360 480 --frames 4 --threads 2 --precisions eager:bf16 \
        --json bench/results/confidence_drift.json
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from segnode import load_model
from segnode.config import EngineConfig
from segnode.engine.bench import machine_description
from segnode.engine.parity import gate_frames
from segnode.engine.segmenter import Segmenter
from segnode.files import write_json
from segnode.pipeline.assemble import DEFAULT_CHECKPOINT


def _summary(diff: np.ndarray) -> dict[str, float]:
    values = diff.astype(np.float64).ravel()
    return {
        'p50': float(np.percentile(values, 50)),
        'p99': float(np.percentile(values, 99)),
        'p99.9': float(np.percentile(values, 99.9)),
        'max': float(values.max()),
        'share_over_3': float((values > 3).mean()),
    }


def _confidences(seg: Segmenter, frames: np.ndarray) -> np.ndarray:
    out = []
    for frame in frames:
        result = seg.segment(frame)
        assert result.confidences is not None
        out.append(result.confidences[0].astype(np.int16))
    return np.stack(out)


def main() -> None:
    """Parse the arguments, measure, print and optionally save."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--checkpoint', default=str(DEFAULT_CHECKPOINT))
    parser.add_argument('--images', default='')
    parser.add_argument('--size', type=int, nargs=2, default=(360, 480))
    parser.add_argument('--frames', type=int, default=4)
    parser.add_argument('--precisions', default='eager:bf16', help='backend:precision,...')
    parser.add_argument('--calibration', default='', help='int8 calibration images')
    parser.add_argument('--threads', type=int, default=0)
    parser.add_argument('--json', default='')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    height, width = args.size
    model = load_model(args.checkpoint)
    frames, source = gate_frames(args.frames, height, width, folder=args.images)

    def build(backend: str, precision: str) -> Segmenter:
        config = EngineConfig(backend=backend, device='cpu', precision=precision, strict=True,
                              confidence=True, parity_gate=False, threads=args.threads,
                              calibration_images=args.calibration if precision == 'int8' else '',
                              remember_choice=False)  # fmt: skip
        return Segmenter.build(model, config, height=height, width=width)

    reference = _confidences(build('eager', 'fp32'), frames)
    rng = np.random.default_rng(0)
    noise = rng.integers(-1, 2, frames.shape)
    noisy = np.clip(frames.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    rows = {'fp32, frames with ±1 grey level of uniform noise': _summary(
        np.abs(_confidences(build('eager', 'fp32'), noisy) - reference)
    )}  # fmt: skip
    for item in args.precisions.split(','):
        backend, _, precision = item.partition(':')
        got = _confidences(build(backend, precision or 'fp32'), frames)
        rows[f'{backend} {precision or "fp32"}'] = _summary(np.abs(got - reference))
    print(f'{len(frames)} {source} frames at {height}x{width}; |confidence - eager fp32|, levels')
    print('| variant | p50 | p99 | p99.9 | max | pixels over 3 levels |')
    print('|---|---|---|---|---|---|')
    for name, s in rows.items():
        print(f'| {name} | {s["p50"]:g} | {s["p99"]:g} | {s["p99.9"]:g} | {s["max"]:g} | '
              f'{s["share_over_3"]:.3%} |')  # fmt: skip
    if args.json:
        doc = {'args': vars(args), 'source': source, 'rows': rows,
               'machine': machine_description(torch.device('cpu'))}  # fmt: skip
        write_json(doc, args.json)


if __name__ == '__main__':
    main()
