"""What the confidence output costs a frame, and how far the engines' confidence drifts.

Builds each backend twice on the bundled (or given) checkpoint, with ``engine.confidence`` off
and on, each gated against eager fp32 (on CamVid val frames when ``--images`` is given); then
times the pairs in turns, one call of each per round, so that a shared machine whose speed
drifts slows every row alike. Reports the per-frame p50 of each engine, the on/off ratio per
backend, and the gate's confidence figures (99th percentile and largest absolute difference
from eager fp32, in grey levels). On a shared machine the frame times vary by more than the
confidence costs, so the graph's tail is also timed alone, in eager PyTorch on (1, K, H, W)
fp32 logits: the argmax and uint8 cast (the mask graph's tail) against argmax plus
``confidence_levels`` (the extra work of the confidence output), in turns, ``--tail-runs``
times. ``--runs 0`` times the tail only.

    .venv/bin/python bench/confidence_cost.py --size 512 1024 --backends eager,onnxruntime \
        --images ../shared/data/camvid/val --runs 10 --threads 2 \
        --json bench/results/confidence_cost.json
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np
import torch

from segnode import load_model
from segnode.config import EngineConfig
from segnode.engine.bench import machine_description
from segnode.engine.parity import gate_frames
from segnode.engine.segmenter import Segmenter
from segnode.files import write_json
from segnode.model.deploy import confidence_levels
from segnode.pipeline.assemble import DEFAULT_CHECKPOINT


def tail_ms(height: int, width: int, classes: int, runs: int) -> dict[str, float]:
    """Median ms of the mask tail and of the mask and confidence tail, timed in turns."""
    logits = torch.randn(1, classes, height, width)
    times: dict[str, list[float]] = {'argmax': [], 'argmax + confidence': []}
    with torch.inference_mode():
        for _ in range(runs + 2):
            for name in times:
                start = time.perf_counter()
                logits.argmax(dim=1).to(torch.uint8)
                if name != 'argmax':
                    confidence_levels(logits).to(torch.uint8)
                times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(values[2:]) for name, values in times.items()}


def main() -> None:
    """Parse the arguments, build, time, print and optionally save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--checkpoint', default=str(DEFAULT_CHECKPOINT))
    parser.add_argument('--size', type=int, nargs=2, default=(512, 1024))
    parser.add_argument('--backends', default='eager,onnxruntime', help='name[:precision],...')
    parser.add_argument('--images', default='', help='gate frames (e.g. CamVid val)')
    parser.add_argument('--runs', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--tail-runs', type=int, default=30)
    parser.add_argument('--threads', type=int, default=0)
    parser.add_argument('--json', default='')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    height, width = args.size
    model = load_model(args.checkpoint)
    tail = tail_ms(height, width, model.config.num_classes, args.tail_runs)
    extra = tail['argmax + confidence'] - tail['argmax']
    print(f'graph tail at {height}x{width}, K={model.config.num_classes}, median of '
          f'{args.tail_runs}: argmax {tail["argmax"]:.1f} ms, argmax + confidence '
          f'{tail["argmax + confidence"]:.1f} ms (+{extra:.1f} ms)', flush=True)  # fmt: skip
    result: dict[str, Any] = {
        'command': 'bench/confidence_cost.py',
        'args': vars(args),
        'machine': machine_description(torch.device('cpu')),
        'tail_ms': tail,
    }
    if args.runs == 0:
        if args.json:
            write_json(result, args.json)
        return
    segmenters: dict[str, Segmenter] = {}
    gates: dict[str, dict[str, Any]] = {}
    for item in args.backends.split(','):
        backend, _, precision = item.partition(':')
        for confidence in (False, True):
            config = EngineConfig(
                backend=backend,
                device='cpu',
                precision=precision or 'fp32',
                strict=True,
                confidence=confidence,
                parity_images=args.images,
                threads=args.threads,
                remember_choice=False,
            )
            name = f'{item} confidence {"on" if confidence else "off"}'
            start = time.perf_counter()
            seg = Segmenter.build(model, config, height=height, width=width)
            print(f'{name}: built and gated in {time.perf_counter() - start:.1f} s', flush=True)
            segmenters[name] = seg
            gates[name] = seg.report.parity
    frame = gate_frames(1, height, width, folder=args.images)[0][0]
    times: dict[str, list[float]] = {name: [] for name in segmenters}
    for round_ in range(args.warmup + args.runs):
        for name, seg in segmenters.items():
            start = time.perf_counter()
            seg.segment(frame)
            if round_ >= args.warmup:
                times[name].append((time.perf_counter() - start) * 1e3)
    rows = []
    for name, values in times.items():
        gate = gates[name]
        rows.append({
            'engine': name,
            'p50_ms': round(statistics.median(values), 1),
            'min_ms': round(min(values), 1),
            'agreement': gate.get('agreement'),
            'confidence_p99': gate.get('confidence_p99'),
            'confidence_max': gate.get('confidence_max'),
        })  # fmt: skip
    print('| engine | p50 ms | min ms | on/off p50 | gate: confidence p99 / max (levels) |')
    print('|---|---|---|---|---|')
    for off, on in zip(rows[::2], rows[1::2]):
        ratio = on['p50_ms'] / off['p50_ms']
        for row, text in ((off, '-'), (on, f'{ratio:.3f}x')):
            figures = (
                f'{row["confidence_p99"]:g} / {row["confidence_max"]}'
                if row['confidence_p99'] is not None
                else '-'
            )
            print(f'| {row["engine"]} | {row["p50_ms"]} | {row["min_ms"]} | {text} | {figures} |')
    result.update(frame_mean_grey=float(np.mean(frame)), rows=rows)
    if args.json:
        write_json(result, args.json)


if __name__ == '__main__':
    main()
