"""Subcommands of the engine layer: ``segnode export`` and ``segnode bench``.

Registering them imports nothing heavy; the handlers import torch and the backends.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import json
from pathlib import Path
import sys
from typing import Any

import segnode.cli.arguments as arguments
from segnode.config import BACKEND_CHOICES, BACKENDS, EngineConfig, PRECISION_CHOICES
from segnode.errors import ConfigError, SegnodeError
from segnode.pipeline.config import RANDOM_CHECKPOINT

__all__ = ['add_commands']

Handler = Callable[[argparse.Namespace], int]


def _model(checkpoint: str | None) -> tuple[Any, str, str]:
    """(model, checkpoint hash, description of the weights)."""
    from segnode.pipeline.assemble import load_labelled_model
    from segnode.pipeline.config import LabelModelConfig

    loaded = load_labelled_model(LabelModelConfig(path=checkpoint or ''))
    return loaded.model, loaded.sha256, loaded.description


def _engine_config(args: argparse.Namespace, **overrides: Any) -> Any:
    values = {
        'device': args.device,
        'precision': args.precision,
        'threads': args.threads,
        'parity_images': args.gate_images,
        'parity_labels': args.gate_labels,
        'calibration_images': args.calibration or '',
        'calibration_frames': args.calibration_frames,
        'openvino_device': args.openvino_device,
        **overrides,
    }
    return EngineConfig(**values)


def _cmd_export(args: argparse.Namespace) -> int:
    from segnode.files import no_empty_folders_left

    arguments.output_dir(args.out, '--out')
    with no_empty_folders_left(args.out):
        return _export(args)


def _export(args: argparse.Namespace) -> int:
    from segnode.engine.build import export_engine

    model, digest, weights = _model(args.checkpoint)
    if not args.checkpoint or args.checkpoint == RANDOM_CHECKPOINT:
        print(f'note: {weights}', file=sys.stderr)
    if args.precision == 'int8' and not args.calibration:
        raise ConfigError('--precision int8 needs --calibration DIR or BAG to calibrate on')
    config = _engine_config(
        args,
        backend=args.backend,
        input_size=tuple(args.input_size) if args.input_size else None,
        bgr=args.bgr,
        dynamic=args.dynamic,
        max_side=args.max_side,
        strict=True,
        confidence=args.confidence,
    )
    h, w = args.size
    path, report = export_engine(
        model,
        config,
        args.out,
        height=h,
        width=w,
        batch=args.batch,
        checkpoint_sha256=digest,
        calibration=_bag_calibration(args, h, w),
    )
    parity = report.parity
    gate = (
        f'agreement {parity["agreement"]:.4%}, {parity["confident_flips"]} confident flips'
        + (
            f', confidence p99 {parity["confidence_p99"]:g} levels'
            if parity.get('confidence_p99') is not None
            else ''
        )
        + f' on {parity["frames"]} {parity["source"]} frames'
        if parity
        else 'gate off'
    )
    print(
        f'exported {report.backend} {report.precision} engine -> {path} ({gate}; '
        f'{report.build_s:.1f} s); manifest {path.with_suffix(".json")}'
    )
    return 0


def _bag_calibration(args: argparse.Namespace, height: int, width: int) -> Any:
    """INT8 calibration frames from a bag given as ``--calibration``; None for a folder."""
    if args.precision != 'int8' or not args.calibration:
        return None
    from segnode.replay.bag_frames import bag_frames, is_bag

    if not is_bag(args.calibration):
        return None
    import torch

    frames = bag_frames(args.calibration, args.calibration_frames, height, width,
                        topic=args.calibration_topic, bgr=args.bgr)  # fmt: skip
    print(f'calibrating on {len(frames)} frames of {args.calibration}', file=sys.stderr)
    return torch.from_numpy(frames)


def _cmd_bench(args: argparse.Namespace) -> int:
    from segnode.engine.bench import markdown_table, run_bench, split_backend

    backends = [b.strip() for b in args.backends.split(',') if b.strip()]
    if not backends:
        raise ConfigError('--backends names no backend (e.g. eager,torch-compile)')
    parts = [split_backend(b) for b in backends]
    unknown = sorted({b for b, _ in parts} - set(BACKEND_CHOICES))
    if unknown:
        raise ConfigError(
            f'--backends: unknown {", ".join(unknown)}; choose from {", ".join(BACKEND_CHOICES)}'
        )
    bad = sorted({f'{b}:{p}' for b, p in parts if p and p not in PRECISION_CHOICES})
    if bad:
        raise ConfigError(
            f'--backends: unknown precision in {", ".join(bad)}; after the colon use one of '
            f'{", ".join(PRECISION_CHOICES)}'
        )
    arguments.output_file(args.json, '--json')
    arguments.output_file(args.markdown, '--markdown')
    model, digest, weights = _model(args.checkpoint)
    if not args.checkpoint or args.checkpoint == RANDOM_CHECKPOINT:
        print(f'note: {weights}', flush=True)
    h, w = args.size
    if not 0.0 <= args.min_agreement <= 1.0:
        raise ConfigError(f'--min-agreement must be in [0, 1], got {args.min_agreement}')
    if args.artifact_dir and not Path(args.artifact_dir).is_dir():
        raise ConfigError(f'--artifact-dir {args.artifact_dir} is not a folder')
    config = _engine_config(
        args,
        strict=True,
        min_agreement=args.min_agreement,
        artifact_dir=args.artifact_dir or '',
        build_if_missing=not args.artifact_dir,
    )

    def say(line: str) -> None:
        print(line, flush=True)

    result = run_bench(
        model,
        backends=backends,
        height=h,
        width=w,
        batch=args.batch,
        warmup=args.warmup,
        runs=args.runs,
        config=config,
        weights=weights,
        strict=args.strict,
        say=say,
        checkpoint_sha256=digest,
    )
    result['command'] = 'segnode ' + ' '.join(sys.argv[1:]) if sys.argv[1:2] == ['bench'] else ''
    table = markdown_table(result)
    print(table)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + '\n', encoding='utf-8')
        print(f'wrote {args.json}')
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(table, encoding='utf-8')
        print(f'wrote {args.markdown}')
    if not any(e.get('status') == 'ok' for e in result['backends'].values()) and backends:
        raise SegnodeError('no backend could be measured (see the reasons above)')
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        '--checkpoint',
        help='segnode checkpoint (default: the bundled CamVid model; random: random weights)',
    )
    p.add_argument(
        '--device', default=EngineConfig.device, help='auto, cpu, cuda or cuda:N (default auto)'
    )
    p.add_argument(
        '--precision',
        default=EngineConfig.precision,
        choices=PRECISION_CHOICES,
        help='auto: bench measures every precision that runs here and keeps the fastest the '
        'parity gate accepts; export takes fp16 on CUDA, fp32 on a CPU',
    )
    p.add_argument(
        '--batch', type=arguments.count, default=1, help='frames per call (one per camera)'
    )
    p.add_argument(
        '--threads',
        type=int,
        default=EngineConfig.threads,
        help='CPU threads (0: library default)',
    )
    p.add_argument(
        '--gate-images',
        default='',
        metavar='DIR',
        help='images the parity gate compares on, e.g. CamVid val (default: synthetic streets)',
    )
    p.add_argument(
        '--gate-labels',
        default='',
        metavar='DIR',
        help='class-id labels of --gate-images (e.g. CamVid valannot): the gate also checks mIoU',
    )
    p.add_argument(
        '--calibration',
        metavar='DIR',
        help='images INT8 calibrates on, e.g. CamVid train (int8 is a candidate of auto only '
        'with them); export also takes a bag: frames spread over its camera topic',
    )
    p.add_argument(
        '--calibration-frames',
        type=arguments.count,
        default=EngineConfig.calibration_frames,
        help='at most this many (default %(default)s)',
    )
    p.add_argument(
        '--openvino-device',
        default=EngineConfig.openvino_device,
        metavar='DEV',
        help='where the openvino backend runs: CPU, or GPU / NPU (GPU.1, ...) where OpenVINO '
        'finds one (default %(default)s)',
    )


def add_commands(sub: Any, handlers: dict[str, Handler]) -> None:
    """Register ``export`` and ``bench`` on the ``segnode`` parser."""
    p = sub.add_parser(
        'export',
        help='build, parity-check and save an engine artifact with its JSON manifest',
    )
    _common(p)
    p.add_argument('--backend', required=True, choices=BACKENDS)
    p.add_argument(
        '--size',
        type=arguments.side,
        nargs=2,
        required=True,
        metavar=('H', 'W'),
        help='camera frame size (the optimal size of a dynamic engine)',
    )
    p.add_argument('--dynamic', action='store_true', help='dynamic H/W (multiples of 32)')
    p.add_argument(
        '--max-side', type=int, default=EngineConfig.max_side, help='dynamic range upper bound'
    )
    p.add_argument(
        '--input-size',
        type=arguments.side,
        nargs=2,
        metavar=('H', 'W'),
        help='fixed network input: frames are resized inside the graph',
    )
    p.add_argument('--bgr', action='store_true', help='frames are bgr8')
    p.add_argument(
        '--calibration-topic',
        default='',
        metavar='TOPIC',
        help='the camera topic of a --calibration bag (default: its only image topic)',
    )
    p.add_argument(
        '--confidence',
        action='store_true',
        help='with the confidence output (for engine.confidence: true)',
    )
    p.add_argument('--out', required=True, metavar='DIR', help='folder for artifacts')
    handlers['export'] = _cmd_export

    p = sub.add_parser('bench', help='time the paper protocol and each backend on the same frames')
    _common(p)
    p.add_argument(
        '--artifact-dir',
        metavar='DIR',
        help='time the engines exported here (segnode export) instead of building them, as '
        'the node loads them; a backend with no artifact for this size, batch and precision '
        'is built in memory (TensorRT: reported unavailable); the JSON names each artifact',
    )
    p.add_argument(
        '--backends',
        default='eager,onnxruntime,torch-compile',
        help='comma-separated backends, each optionally BACKEND:PRECISION to override '
        '--precision, e.g. eager,torch-compile,torch-compile:bf16,auto (auto: the engine '
        'the node would choose here, measured afresh) (default eager,onnxruntime,torch-compile)',
    )
    p.add_argument(
        '--size',
        type=arguments.side,
        nargs=2,
        default=(512, 1024),
        metavar=('H', 'W'),
        help='frame size (default 512 1024)',
    )
    p.add_argument(
        '--warmup', type=arguments.non_negative, default=1, help='untimed calls (default 1)'
    )
    p.add_argument('--runs', type=arguments.count, default=5, help='timed calls (default 5)')
    p.add_argument('--json', metavar='PATH', help='write the results as JSON')
    p.add_argument('--markdown', metavar='PATH', help='write the Markdown table')
    p.add_argument('--strict', action='store_true', help='fail when a backend cannot be built')
    p.add_argument(
        '--min-agreement',
        type=float,
        default=EngineConfig.min_agreement,
        help='parity gate argmax agreement (default %(default)s); lower it only to time a '
        'build the gate refuses: the table marks such rows with the threshold used',
    )
    handlers['bench'] = _cmd_bench
