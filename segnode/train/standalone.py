"""The standalone ``segnode calibrate`` and ``segnode eval`` commands."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import logging
from pathlib import Path
import time
from typing import Any

from segnode.config import config_from_dict
from segnode.data.dataset import SegmentationDataset
from segnode.data.sources import scan_dataset
from segnode.errors import SegnodeError
from segnode.files import write_json
from segnode.metrics import format_table, save_confusion_png
from segnode.model.checkpoint import build_from_checkpoint, save_checkpoint
from segnode.model.mfaranet import MFARANet
from segnode.train.build import build_training_model
from segnode.train.calibrate import calibrate_for_training
from segnode.train.config import EvalConfig, load_train_config
from segnode.train.distributed import Context, init_distributed, resolve_device, shutdown
from segnode.train.evaluate import EvalOptions, evaluate
from segnode.train.loader import open_datasets

__all__ = ['calibrate_command', 'eval_command', 'run_eval']

_LOG = logging.getLogger('segnode.train')


def _model_to_calibrate(
    checkpoint: str | None, cfg: Any, num_classes: int
) -> tuple[MFARANet, str]:
    if not checkpoint:
        return build_training_model(cfg, num_classes), 'segnode calibrate (new model)'
    model, meta = build_from_checkpoint(
        checkpoint, num_classes=num_classes, boundary_heads=meta_has_boundary(checkpoint)
    )
    if not model.config.equalizers:
        raise SegnodeError(f'{checkpoint} was built without scale equalizers')
    return model, f'{meta.get("source") or checkpoint}; calibrated by segnode calibrate'


def meta_has_boundary(checkpoint: str) -> bool:
    """Whether a checkpoint keeps the training-only boundary heads."""
    from segnode.model.checkpoint import read_checkpoint

    _, meta = read_checkpoint(checkpoint)
    return bool(meta.get('model', {}).get('boundary_heads', False))


def calibrate_command(
    config: str | None, overrides: Sequence[str], out: str, checkpoint: str | None
) -> int:
    """Calibrate a new or loaded model on training batches and write it to ``out``."""
    cfg = load_train_config(config, overrides)
    ctx = init_distributed(cfg.device)
    try:
        data = open_datasets(cfg, with_val=False)
        model, source = _model_to_calibrate(checkpoint, cfg, data.table.num_classes)
        model.to(ctx.device)
        t0 = time.perf_counter()
        provenance = calibrate_for_training(model, data.train, cfg, ctx)
        seconds = time.perf_counter() - t0
        if ctx.is_main:
            save_checkpoint(
                model.cpu(),
                out,
                class_names=data.table.names,
                palette=data.table.palette,
                dataset=data.table.dataset,
                source=source,
            )
            for name, stats in provenance['equalizers'].items():
                print(
                    f'{name:<28} level {stats["depth"]}  mean {stats["mean"]:+.4f}  '
                    f'std {stats["std"]:.4f}'
                )
            print(
                f'calibrated {len(provenance["equalizers"])} equalizers on '
                f'{provenance["data"]["images"]} images in {seconds:.1f} s -> {out}'
            )
    finally:
        shutdown(ctx)
    return 0


def _eval_config(args: argparse.Namespace) -> EvalConfig:
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


def run_eval(cfg: EvalConfig, progress: bool = True) -> tuple[dict[str, Any], Any]:
    """Evaluate ``cfg.checkpoint``; returns the JSON summary and the confusion matrix."""
    spec = scan_dataset(cfg.dataset, cfg.data_root, cfg.split, cfg.classes)
    model, meta = build_from_checkpoint(cfg.checkpoint)
    k = model.config.num_classes
    if k != spec.table.num_classes:
        raise SegnodeError(
            f'{cfg.checkpoint} predicts {k} classes but {cfg.dataset} has {spec.table.num_classes}'
        )
    resize = (cfg.resize[0], cfg.resize[1]) if cfg.resize else None
    dataset = SegmentationDataset(spec, resize=resize, boundary=False, limit=cfg.limit)
    device = resolve_device(cfg.device)
    window = (cfg.window[0], cfg.window[1]) if cfg.window else None
    options = EvalOptions(cfg.scales, cfg.flip, window, cfg.stride_ratio)
    t0 = time.perf_counter()
    matrix = evaluate(
        model.to(device),
        dataset,
        k,
        device,
        options,
        ctx=Context(device=device),
        progress=progress,
    )
    summary = matrix.summary(list(meta['classes']['names']))
    summary.update(
        {
            'checkpoint': cfg.checkpoint,
            'dataset': cfg.dataset,
            'split': cfg.split,
            'images': len(dataset),
            'protocol': {
                'scales': list(cfg.scales),
                'flip': cfg.flip,
                'window': list(cfg.window) or None,
                'stride_ratio': cfg.stride_ratio,
                'resize': list(cfg.resize) or None,
            },
            'seconds': round(time.perf_counter() - t0, 2),
            'confusion_matrix': matrix.matrix.tolist(),
        }
    )
    return summary, matrix


def eval_command(args: argparse.Namespace) -> int:
    """``segnode eval``: print per-class IoU, write JSON and the confusion-matrix PNG."""
    cfg = _eval_config(args)
    summary, matrix = run_eval(cfg)
    print(format_table(summary))
    if args.json:
        print(f'wrote {write_json(summary, args.json)}')
    png = args.confusion or (
        str(Path(args.json).with_suffix('')) + '_confusion.png'
        if args.json
        else 'outputs/eval/confusion.png'
    )
    title = f'{cfg.dataset} {cfg.split}: mIoU {100 * summary["miou"]:.2f}'
    print(f'wrote {save_confusion_png(matrix.matrix, list(summary["per_class_iou"]), png, title)}')
    return 0
