"""Subcommands about checkpoints: ``info``, ``convert-official``, ``to-fp16`` and ``rehash``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
import json
from pathlib import Path
import textwrap
from typing import Any

import segnode.cli.arguments as arguments
from segnode.errors import SegnodeError

__all__ = ['add_commands']

Handler = Callable[[argparse.Namespace], int]


def _cmd_info(args: argparse.Namespace) -> int:
    from segnode.config import config_to_dict
    from segnode.model.checkpoint import build_from_checkpoint
    from segnode.model.complexity import conv_macs, count_parameters
    from segnode.model.fold import count_residual_scales, fold_equalizers
    from segnode.train.config import current_keys

    model, meta = build_from_checkpoint(args.checkpoint)
    h, w = args.size
    eq = meta.get('equalizers', {})
    folded = fold_equalizers(model)
    summary: dict[str, Any] = {
        'checkpoint': str(args.checkpoint),
        'architecture': {'name': 'MFARANet', **config_to_dict(model.config), **meta['model']},
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
        'recipe': current_keys(meta.get('recipe', {})),  # a recipe may predate a rename
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
    for key in ('levels', 'batches_per_pass', 'measured_at', 'data', 'note'):
        if key in e:
            print(f'  {key + ":":<18} {e[key]}')
    print(f'parameters    {summary["parameters"]:,} (without training-only heads)')
    print(f'MACs          {summary["macs"]["gmac"]} G at {h}x{w} (convolutions only)')
    for key in ('metrics', 'recipe'):
        if summary[key]:
            pairs = [f'{k}={json.dumps(v)}' for k, v in summary[key].items()]
            for line in textwrap.wrap(' '.join(pairs), 84) or ['']:
                print(f'{key:<14}{line}')
                key = ''
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


def _cmd_to_fp16(args: argparse.Namespace) -> int:
    from segnode.model.checkpoint import build_from_checkpoint, save_checkpoint
    from segnode.train.config import current_keys

    arguments.output_file(args.dst, 'DST')
    model, meta = build_from_checkpoint(args.src)  # the training-only boundary heads go
    classes = meta['classes']
    source = meta.get('source') or str(args.src)
    written = save_checkpoint(
        model,
        args.dst,
        class_names=classes['names'],
        palette=classes['palette'],
        dataset=str(meta.get('dataset', '')),
        recipe=current_keys(meta.get('recipe') or {}),
        metrics=meta.get('metrics'),
        source=f'{source}; fp16 copy of {args.src}',
        half=True,
    )
    size_mb = Path(args.dst).stat().st_size / 2**20
    print(
        f'wrote {args.dst} ({size_mb:.1f} MB, fp16 weights without the training-only heads; '
        f'weights sha256 {written["weights_sha256"][:12]})'
    )
    return 0


def _cmd_rehash(args: argparse.Namespace) -> int:
    from segnode.model.checkpoint import rehash_checkpoint

    arguments.output_file(args.dst, 'DST')
    meta, had_hash = rehash_checkpoint(args.src, args.dst)
    sha = meta['weights_sha256'][:12]
    if had_hash:
        print(f'{args.src} already records its weights sha256 ({sha}); copied to {args.dst}')
    else:
        print(
            f'wrote {args.dst}: the weights and metadata of {args.src} with weights sha256 {sha} '
            '(recorded as the weights are now: re-save only a file you trust)'
        )
    return 0


def add_commands(sub: Any, handlers: dict[str, Handler]) -> None:
    """Register ``info``, ``convert-official``, ``to-fp16`` and ``rehash``."""
    p = sub.add_parser('info', help='describe a checkpoint: model, classes, equalizers, cost')
    p.add_argument('checkpoint', help='segnode checkpoint (.pt)')
    p.add_argument(
        '--size',
        type=arguments.side,
        nargs=2,
        default=(1024, 2048),
        metavar=('H', 'W'),
        help='input size for the MAC count (default: 1024 2048)',
    )
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
        'to-fp16',
        help='copy a checkpoint for deployment: fp16 weights, same metadata, no training heads',
        description='Write SRC (e.g. runs/x/model_best.pt) as a deployment checkpoint: fp16 '
        'weights (half the size; engines compute in fp32 or their own precision), the same '
        'classes, palette, recipe and metrics, without the training-only boundary heads. The '
        'bundled default model is made this way (docs/model-card.md).',
    )
    p.add_argument('src', help='segnode checkpoint')
    p.add_argument('dst', help='checkpoint to write')
    handlers['to-fp16'] = _cmd_to_fp16

    p = sub.add_parser(
        'rehash',
        help='re-save a trusted checkpoint that predates the weights hash, with the hash',
        description='Checkpoints without meta.weights_sha256 are refused (their weights are '
        'unverified). Write SRC, checked in every other way, to DST unchanged but with the '
        'SHA-256 of its weights. The hash records the weights as they are now: re-save only a '
        'file you trust (docs/model.md, "Checkpoint integrity").',
    )
    p.add_argument('src', help='segnode checkpoint without a weights hash')
    p.add_argument('dst', help='checkpoint to write')
    handlers['rehash'] = _cmd_rehash
