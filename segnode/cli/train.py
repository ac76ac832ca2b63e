"""Subcommands of training: train, equalize and eval (heavy imports inside the handlers)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import segnode.cli.arguments as arguments
from segnode.train.config import DATASETS, EvalConfig

__all__ = ['add_commands']

Handler = Callable[[argparse.Namespace], int]

_TRAIN_HELP = """\
Train MFARANet as configured in a YAML file (config/train/*.yaml); any key can be
overridden as key=value (values parsed as YAML, e.g. crop=[64,64] amp=bf16).
Multi-GPU and multi-node: launch the same command with torchrun, e.g.
  torchrun --nproc_per_node 2 -m segnode train --config config/train/cityscapes.yaml
Resume a killed run: the same command with resume=auto."""


def _setup_logging() -> None:
    import logging

    logging.basicConfig(level=logging.INFO, format='segnode: %(message)s')


def _use_tcmalloc_on_cpu(args: argparse.Namespace, device: str) -> None:
    """On a CPU, re-execute with tcmalloc preloaded where it is present (cli/allocator.py).

    Only a process whose own command line is this command is re-executed: ``main([...])``
    called from Python (a test, a notebook) runs as it is.
    """
    import torch

    from segnode.cli.allocator import use_tcmalloc

    if not getattr(args, 'own_command_line', False):
        return
    if not (device.startswith('cuda') or (device == 'auto' and torch.cuda.is_available())):
        use_tcmalloc()


def _cmd_train(args: argparse.Namespace) -> int:
    from segnode.train.config import load_train_config
    from segnode.train.loop import train

    _setup_logging()
    cfg = load_train_config(args.config, args.overrides)
    arguments.output_dir(cfg.out_dir, 'out_dir')  # before any measuring or training
    _use_tcmalloc_on_cpu(args, cfg.device)
    result = train(cfg)
    rate = result.images_per_second
    speed = f'{rate:.2f} images/s' if rate == rate else 'none run now'
    if result.unknown_label_pixels:
        print(
            f'note: {result.unknown_label_pixels} training label pixels held ids no class has '
            '(not 255): trained as ignore'
        )
    if result.checkpoint is None:
        print(
            f'stopped at iteration {result.iterations}/{result.max_iters} ({speed}); '
            f'continue with resume=auto out_dir={result.out_dir}'
        )
    else:
        best = '-' if result.best_miou is None else f'{result.best_miou:.4f}'
        print(
            f'trained {result.iterations} iterations ({speed}); best val mIoU {best}; '
            f'final model {result.checkpoint}'
        )
    return 0


def _cmd_equalize(args: argparse.Namespace) -> int:
    from segnode.train.config import load_train_config
    from segnode.train.equalize import equalize_checkpoint

    _setup_logging()
    cfg = load_train_config(args.config, args.overrides)
    arguments.output_file(args.out, '--out')
    provenance, seconds = equalize_checkpoint(cfg, args.out, args.checkpoint)
    for name, stats in provenance['equalizers'].items():
        print(
            f'{name:<28} level {stats["depth"]}  mean {stats["mean"]:+.4f}  std {stats["std"]:.4f}'
        )
    print(
        f'measured {len(provenance["equalizers"])} equalizers on '
        f'{provenance["data"]["images"]} images in {seconds:.1f} s -> {args.out}'
    )
    return 0


def _eval_config(args: argparse.Namespace) -> Any:
    from segnode.config import config_from_dict
    from segnode.train.config import EvalConfig

    values = {
        'checkpoint': args.checkpoint,
        'dataset': args.dataset,
        'data_root': args.data_root,
        'split': args.split,
        'classes': args.classes,
        'scales': list(args.scales),
        'flip': args.flip,
        'window': list(args.window or ()),
        'stride_ratio': args.stride_ratio,
        'resize': list(args.resize or ()),
        'limit': args.limit,
        'device': args.device,
    }
    return config_from_dict(EvalConfig, values, '--')


def _cmd_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from segnode.files import write_json
    from segnode.metrics import format_table, save_confusion_png
    from segnode.train.evaluate import evaluate_checkpoint

    cfg = _eval_config(args)
    arguments.output_file(args.json, '--json')
    arguments.output_file(args.confusion, '--confusion')
    summary, matrix = evaluate_checkpoint(cfg)
    print(format_table(summary))
    if summary['seen_in_training']:
        print(
            f'note: {summary["seen_in_training"]} of these {summary["images"]} images are in the '
            f'split the checkpoint was trained on ({cfg.dataset} {summary["train_split"]}): '
            'the score says how it fits them, not how it does on images it never saw'
        )
    if args.json:
        print(f'wrote {write_json(summary, args.json)}')
    png = args.confusion or (
        str(Path(args.json).with_suffix('')) + '_confusion.png'
        if args.json
        else 'outputs/eval/confusion.png'
    )
    if not Path(png).suffix:
        png += '.png'  # what the plot is written as; say so
    title = f'{cfg.dataset} {cfg.split}: mIoU {summary["miou"]:.4f}'
    print(f'wrote {save_confusion_png(matrix.matrix, list(summary["per_class_iou"]), png, title)}')
    return 0


def _add_train(sub: Any) -> None:
    p = sub.add_parser(
        'train',
        help='train MFARANet (single GPU, CPU, or DDP via torchrun)',
        description=_TRAIN_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument('--config', help='training YAML (config/train/cityscapes.yaml, camvid.yaml)')
    p.add_argument('overrides', nargs='*', metavar='KEY=VALUE', help='config overrides')


def _add_equalize(sub: Any) -> None:
    p = sub.add_parser(
        'equalize',
        help='measure the Scale Equalizer constants on augmented training batches and write a '
        'checkpoint',
        description='Measure the Scale Equalizer constants on the training split through the '
        'training augmentation (config as for train) and write a segnode checkpoint: of a '
        'freshly initialised model, or of --checkpoint (e.g. a converted official one).',
    )
    p.add_argument('--config', help='training YAML (data, crop, batch size, seed)')
    p.add_argument(
        '--checkpoint', help='measure the equalizers of this checkpoint instead of a new model'
    )
    p.add_argument('--out', required=True, help='checkpoint to write')
    p.add_argument('overrides', nargs='*', metavar='KEY=VALUE', help='config overrides')


def _add_eval(sub: Any) -> None:
    p = sub.add_parser('eval', help='per-class IoU and mIoU of a checkpoint on a dataset split')
    p.add_argument('--checkpoint', required=True, help='segnode checkpoint (.pt)')
    p.add_argument(
        '--dataset',
        required=True,
        choices=DATASETS,
        help='dataset layout',
    )
    p.add_argument('--data-root', required=True, help='dataset root folder')
    p.add_argument(
        '--split', default=EvalConfig.split, help='split to evaluate (default: %(default)s)'
    )
    p.add_argument('--classes', default='', help='class table YAML (folder dataset)')
    p.add_argument('--json', help='write the results (miou, per_class_iou, ...) to this file')
    p.add_argument(
        '--confusion',
        help='confusion-matrix PNG (default: beside --json, else outputs/eval/confusion.png)',
    )
    p.add_argument(
        '--scales',
        type=float,
        nargs='+',
        default=list(EvalConfig.scales),
        help='image scales averaged (e.g. 0.5 0.75 1.0 1.25 1.5 1.75)',
    )
    p.add_argument('--flip', action='store_true', help='also average the flipped image')
    p.add_argument(
        '--window',
        type=arguments.side,
        nargs=2,
        metavar=('H', 'W'),
        help='sliding-window size (default: whole image)',
    )
    p.add_argument(
        '--stride-ratio',
        type=float,
        default=EvalConfig.stride_ratio,
        help='window stride / window size (default 2/3)',
    )
    p.add_argument(
        '--resize',
        type=arguments.side,
        nargs=2,
        metavar=('H', 'W'),
        help='resize images and labels first (labels nearest)',
    )
    p.add_argument(
        '--limit',
        type=arguments.non_negative,
        default=EvalConfig.limit,
        help='evaluate the first N images only (0: all)',
    )
    p.add_argument('--device', default=EvalConfig.device, help='auto, cpu, cuda or cuda:N')


def add_commands(sub: Any, handlers: dict[str, Handler]) -> None:
    """Register ``train``, ``equalize`` and ``eval`` on the ``segnode`` parser."""
    _add_train(sub)
    _add_equalize(sub)
    _add_eval(sub)
    handlers['train'] = _cmd_train
    handlers['equalize'] = _cmd_equalize
    handlers['eval'] = _cmd_eval
