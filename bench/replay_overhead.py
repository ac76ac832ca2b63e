"""What replay adds beyond the engine in max mode (rosbag issue target: at most 5% of wall time).

Side by side in one run, on the same frames and the same engine:

- ``engine``: a plain loop of ``Segmenter.segment`` over the frames, already decoded in memory;
- ``replay``: ``segnode replay --rate max`` over a bag of those frames with ground truth (bag
  reading and deserialisation, decoding, the service, scoring, the progress bar).

The frames are the 101 CamVid val images when ``SEGNODE_CAMVID_ROOT`` is set, else synthetic
drive frames at the same size. Reports both wall times, the ratio, and the report's own
``replay_overhead`` (1 - engine time / wall time).

    SEGNODE_CAMVID_ROOT=../shared/data/camvid .venv/bin/python bench/replay_overhead.py \
        --backend eager --json bench/results/replay_overhead.json
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import platform
import tempfile
import time

import cv2
import torch

from segnode.config import EngineConfig
from segnode.files import write_json
from segnode.pipeline.assemble import load_labelled_model, segmenter_factory
from segnode.pipeline.config import NodeConfig
from segnode.replay.bag_from_images import bag_from_images
from segnode.replay.options import ReplayOptions
from segnode.replay.replay import replay
from segnode.synthetic import synthetic_drive


def frames_folder(root: Path, count: int, size: tuple[int, int]) -> tuple[Path, Path, str]:
    camvid = os.environ.get('SEGNODE_CAMVID_ROOT', '')
    if camvid and (Path(camvid) / 'val').is_dir():
        return Path(camvid) / 'val', Path(camvid) / 'valannot', 'CamVid val'
    images, labels = root / 'images', root / 'labels'
    images.mkdir()
    labels.mkdir()
    for i, (rgb, label) in enumerate(synthetic_drive(count, *size)):
        cv2.imwrite(str(images / f'{i:04d}.png'), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(labels / f'{i:04d}.png'), label)
    return images, labels, 'synthetic drive'


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--backend', default='eager')
    parser.add_argument('--threads', type=int, default=0)
    parser.add_argument('--count', type=int, default=101, help='synthetic frames without data')
    parser.add_argument('--json', type=Path)
    args = parser.parse_args()
    engine_cfg = EngineConfig(backend=args.backend, device='cpu', threads=args.threads)
    loaded = load_labelled_model()
    with tempfile.TemporaryDirectory() as tmp:
        images, labels, source = frames_folder(Path(tmp), args.count, (360, 480))
        bag = Path(tmp) / 'bag'
        bag_from_images(images, bag, labels=labels, rate=30.0, progress=False)
        paths = sorted(images.glob('*.png'))
        frames = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]
        h, w = frames[0].shape[:2]
        segmenter = segmenter_factory(loaded, engine_cfg)(1, h, w)
        segmenter.segment(frames[0])  # warm-up, as replay does
        start = time.perf_counter()
        for frame in frames:
            segmenter.segment(frame)
        engine_wall = time.perf_counter() - start
        config = NodeConfig(engine=engine_cfg)
        result = replay(bag, config, ReplayOptions(progress=True), loaded=loaded)
    ratio = result.wall_s / engine_wall
    overhead = 1 - result.engine_s / result.wall_s
    print(f'{len(frames)} {source} frames {h}x{w}, backend {result.engine}')
    print(f'engine loop   {engine_wall:8.2f} s')
    print(
        f'replay (max)  {result.wall_s:8.2f} s   ratio {ratio:.3f}  ({(ratio - 1) * 100:+.1f} %)'
    )
    print(f'replay_overhead (outside the engine, same run): {overhead * 100:.2f} % of wall time')
    if args.json:
        doc = {
            'frames': len(frames),
            'source': source,
            'size': [h, w],
            'engine': result.engine,
            'model': result.model,
            'torch_threads': torch.get_num_threads(),
            'engine_loop_s': engine_wall,
            'replay_wall_s': result.wall_s,
            'replay_engine_s': result.engine_s,
            'replay_over_engine_loop': ratio,
            'replay_overhead': overhead,
            'machine': platform.machine(),
        }
        write_json(doc, args.json)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
