"""The ``segnode`` command: one entry point with subcommands.

Every subcommand reports a user's mistake as one line ``segnode: error: ...`` with exit
code 2, never a traceback.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
import importlib
import json
import sys
from typing import Any

from segnode import __version__
from segnode.config import BACKEND_CHOICES
from segnode.errors import SegnodeError

__all__ = ['main']

Handler = Callable[[argparse.Namespace], int]


def _cmd_info(args: argparse.Namespace) -> int:
    from segnode.model.checkpoint import build_from_checkpoint
    from segnode.model.complexity import conv_macs, count_parameters
    from segnode.model.fold import count_residual_scales, fold_equalizers

    model, meta = build_from_checkpoint(args.checkpoint)
    h, w = args.size
    eq = meta.get('equalizers', {})
    folded = fold_equalizers(model)
    summary: dict[str, Any] = {
        'checkpoint': str(args.checkpoint),
        'architecture': {'name': 'MFARANet', **meta['model']},
        'dataset': meta.get('dataset', ''),
        'classes': meta['classes']['names'],
        'equalizers': {
            'state': eq.get('state', 'unknown'),
            'count': sum(type(m).__name__ == 'ScaleEqualizer' for m in model.modules()),
            'residual_multiplies_after_fold': count_residual_scales(folded),
            **{k: v for k, v in eq.items() if k not in ('state', 'equalizers')},
        },
        'parameters': count_parameters(model),
        'macs': {'size': [h, w], 'gmac': round(conv_macs(model, h, w) / 1e9, 3)},
        'metrics': meta.get('metrics', {}),
        'recipe': meta.get('recipe', {}),
        'source': meta.get('source', ''),
        'git_revision': meta.get('git_revision', ''),
        'created': meta.get('created', ''),
        'dtype': meta.get('dtype', 'float32'),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    arch = summary['architecture']
    print(f'checkpoint    {summary["checkpoint"]}')
    print(
        f'architecture  MFARANet (deep-stem ResNet-18, MFAM, RAM, ASFM), width {arch["width"]}'
        f'{", pruned 1/8 branch" if arch["pruned"] else ""}'
    )
    print(f'dataset       {summary["dataset"] or "-"}')
    print(f'classes       {len(summary["classes"])}: {", ".join(summary["classes"])}')
    e = summary['equalizers']
    print(
        f'equalizers    {e["state"]}: {e["count"]} equalizers, '
        f'{e["residual_multiplies_after_fold"]} scalar multiplies left after folding'
    )
    for key in ('levels', 'batches_per_pass', 'calibrated_at', 'data', 'note'):
        if key in e:
            print(f'  {key:<12}{e[key]}')
    print(f'parameters    {summary["parameters"]:,} (without training-only heads)')
    print(f'MACs          {summary["macs"]["gmac"]} G at {h}x{w} (convolutions only)')
    for key in ('metrics', 'recipe'):
        if summary[key]:
            print(f'{key:<14}{json.dumps(summary[key])}')
    print(f'source        {summary["source"] or "-"}')
    print(f'git revision  {summary["git_revision"] or "-"}   created {summary["created"] or "-"}')
    return 0


def _cmd_convert_official(args: argparse.Namespace) -> int:
    from segnode.data.labels import class_table
    from segnode.model.checkpoint import save_checkpoint
    from segnode.model.official import load_official

    model, report = load_official(args.src, keep_boundary=args.keep_boundary)
    k = report['num_classes']
    default = {19: 'cityscapes', 11: 'camvid'}.get(k)
    table = class_table(args.dataset or default or k)
    if table.num_classes != k:
        raise SegnodeError(
            f'--dataset {args.dataset} has {table.num_classes} classes, the checkpoint has {k}'
        )
    save_checkpoint(
        model,
        args.dst,
        class_names=table.names,
        palette=table.palette,
        dataset=table.dataset,
        source=f'official MFARANet checkpoint {args.src} ({report["layout"]} layout)',
        half=args.half,
    )
    dropped = ', '.join(f'{n} {p}*' for p, n in report['dropped'].items()) or 'nothing'
    print(
        f'converted {args.src} ({report["layout"]} layout, {k} classes) -> {args.dst}; '
        f'dropped {dropped}; equalizers: identity'
    )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from segnode.replay.demo import run_demo

    h, w = args.size
    return run_demo(
        frames=args.frames, size=(h, w), rate=args.rate, backend=args.backend, out_dir=args.out
    )


# Modules contributing subcommands: each has ``add_commands(sub, handlers)``, which registers
# argparse subparsers and handlers and imports nothing heavy (handlers import lazily).
COMMAND_MODULES = ('segnode.cli.engine', 'segnode.cli.train', 'segnode.cli.replay')


def _parser() -> tuple[argparse.ArgumentParser, dict[str, Handler]]:
    parser = argparse.ArgumentParser(
        prog='segnode', description='Real-time semantic segmentation (MFARANet) for ROS 2.'
    )
    parser.add_argument('--version', action='version', version=f'segnode {__version__}')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    handlers: dict[str, Handler] = {}

    p = sub.add_parser('info', help='describe a checkpoint: model, classes, equalizers, cost')
    p.add_argument('checkpoint', help='segnode checkpoint (.pt)')
    p.add_argument('--size', type=int, nargs=2, default=(1024, 2048), metavar=('H', 'W'),
                   help='input size for the MAC count (default: 1024 2048)')  # fmt: skip
    p.add_argument('--json', action='store_true', help='print JSON instead of text')
    handlers['info'] = _cmd_info

    p = sub.add_parser('convert-official', help='import a released official MFARANet .pth')
    p.add_argument('src', help='official checkpoint (.pth)')
    p.add_argument('dst', help='segnode checkpoint to write')
    p.add_argument(
        '--dataset',
        choices=('cityscapes', 'camvid'),
        help='class table (default: cityscapes for 19 classes, camvid for 11, else generic)',
    )
    p.add_argument(
        '--keep-boundary',
        action='store_true',
        help='keep the training-only boundary heads (to resume training)',
    )
    p.add_argument('--half', action='store_true', help='store weights as fp16')  # fmt: skip
    handlers['convert-official'] = _cmd_convert_official

    p = sub.add_parser(
        'demo',
        help='record a synthetic drive into a bag and replay it in realtime (default model)',
    )
    p.add_argument(
        '--size',
        type=int,
        nargs=2,
        default=(360, 480),
        metavar=('H', 'W'),
        help='frame size (default: 360 480, CamVid)',
    )
    p.add_argument('--frames', type=int, default=30, help='frames in the drive (default: 30)')
    p.add_argument('--rate', type=float, default=10.0, help='camera rate in Hz (default: 10)')
    p.add_argument(
        '--backend',
        default='eager',
        choices=BACKEND_CHOICES,
        help='engine backend (default: eager, which starts at once)',
    )
    p.add_argument('--out', default='outputs/demo', help='folder for the bag and the report')
    handlers['demo'] = _cmd_demo
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(sub, handlers)
    return parser, handlers


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``segnode`` command line; returns the exit code."""
    parser, handlers = _parser()
    args = parser.parse_args(argv)
    try:
        return handlers[args.command](args)
    except SegnodeError as err:
        print(f'segnode: error: {err}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('segnode: interrupted', file=sys.stderr)
        return 130
