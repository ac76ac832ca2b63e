"""mIoU of INT8 engines against fp32 on a labelled set (CamVid val), engine by engine.

Each variant (``BACKEND:PRECISION``) is built as the node builds it (``Segmenter.build``, the
parity gate at its default thresholds, on ``--gate-images`` when given), INT8 calibrated on
``--calibration`` (e.g. CamVid train, never the evaluated frames); then every image of
``--images`` goes through it at ``--size`` and the masks are scored against ``--labels``
(nearest-resized to that size). Masks only, no timings.

    .venv/bin/python bench/int8_accuracy.py --images ../shared/data/camvid/val \
        --labels ../shared/data/camvid/valannot --calibration ../shared/data/camvid/train \
        --gate-images ../shared/data/camvid/val --gate-labels ../shared/data/camvid/valannot \
        --size 360 480 --json bench/results/int8_accuracy_val_360x480.json
"""

from __future__ import annotations

import argparse
from pathlib import Path
import time

from segnode.config import EngineConfig
from segnode.engine.parity import image_frames, image_paths, label_frames
from segnode.engine.segmenter import Segmenter
from segnode.files import write_json
from segnode.metrics import ConfusionMatrix
from segnode.pipeline.assemble import load_labelled_model
from segnode.pipeline.config import LabelModelConfig

DEFAULT_VARIANTS = 'eager:fp32,openvino:fp32,openvino:int8,onnxruntime:int8'


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--checkpoint', default='', help='default: the bundled model')
    parser.add_argument('--images', required=True)
    parser.add_argument('--labels', required=True)
    parser.add_argument('--calibration', required=True, help='images INT8 calibrates on')
    parser.add_argument('--calibration-frames', type=int, default=16)
    parser.add_argument('--size', type=int, nargs=2, default=(360, 480), metavar=('H', 'W'))
    parser.add_argument('--variants', default=DEFAULT_VARIANTS)
    parser.add_argument('--threads', type=int, default=0)
    parser.add_argument('--gate-images', default='', help="the gate's frames (default synthetic)")
    parser.add_argument('--gate-labels', default='')
    parser.add_argument('--no-gate', action='store_true', help='score engines the gate refuses')
    parser.add_argument('--json', type=Path)
    args = parser.parse_args()

    loaded = load_labelled_model(LabelModelConfig(path=args.checkpoint))
    k = loaded.model.config.num_classes
    h, w = args.size
    paths = image_paths(args.images, 1, what='--images')
    frames = image_frames(paths, h, w)
    labels = label_frames(paths, args.labels, h, w, k)
    results: dict[str, dict[str, object]] = {}
    for variant in args.variants.split(','):
        backend, _, precision = variant.partition(':')
        config = EngineConfig(
            backend=backend,
            device='cpu',
            precision=precision or 'fp32',
            strict=True,
            threads=args.threads,
            calibration_images=args.calibration,
            calibration_frames=args.calibration_frames,
            remember_choice=False,
            parity_images=args.gate_images,
            parity_labels=args.gate_labels,
            parity_gate=not args.no_gate,
        )
        start = time.perf_counter()
        seg = Segmenter.build(loaded.model, config, height=h, width=w,
                              checkpoint_sha256=loaded.sha256)  # fmt: skip
        built = time.perf_counter() - start
        scores = ConfusionMatrix(k)
        for frame, label in zip(frames, labels, strict=True):
            scores.update(seg.segment(frame).mask, label)
        results[variant] = {'miou': scores.miou(), 'pixel_accuracy': scores.pixel_accuracy(),
                            'build_s': round(built, 1)}  # fmt: skip
        print(f'{variant}: mIoU {scores.miou():.4f}, pixel accuracy '
              f'{scores.pixel_accuracy():.4f} on {len(frames)} frames (built in {built:.0f} s)',
              flush=True)  # fmt: skip
        del seg
    if args.json:
        record = {'size': [h, w], 'frames': len(frames), 'images': args.images,
                  'gate': 'off' if args.no_gate else args.gate_images or 'synthetic',
                  'calibration': [args.calibration, args.calibration_frames],
                  'weights': loaded.description, 'results': results}  # fmt: skip
        write_json(record, args.json)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
