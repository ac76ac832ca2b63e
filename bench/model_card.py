"""The figures of docs/model-card.md, measured on the shipped checkpoint and its runs.

Val mIoU (single scale, and with flip), per-class IoU, the confusion matrix and the learning
curve of the runs that trained the model::

    SEGNODE_CAMVID_ROOT=../shared/data/camvid python bench/model_card.py \
        --checkpoint segnode/weights/camvid_mfaranet.pt \
        --runs runs/camvid-scratch runs/camvid-scratch-finish \
        --json bench/results/model_card.json --figures docs/figures

Each run folder is read for its metrics.jsonl (val lines) and config.yaml (val resolution);
a later run's iterations continue where the run before it was stopped (its ``init`` state).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import re
import sys
import time
from typing import Any

import yaml

from segnode.files import write_json
from segnode.metrics import format_table, save_confusion_png
from segnode.train.config import EvalConfig
from segnode.train.evaluate import evaluate_checkpoint


def _curve(runs: list[Path]) -> list[dict[str, Any]]:
    """Every validation of the runs, in order, on one iteration axis."""
    points, offset = [], 0
    for run in runs:
        config = yaml.safe_load((run / 'config.yaml').read_text())
        init = re.search(r'iter_(\d+)\.pt$', str(config.get('init') or ''))
        offset = int(init.group(1)) if init else offset
        size = config.get('resize') or config.get('crop')
        for line in (run / 'metrics.jsonl').read_text().splitlines():
            entry = json.loads(line)
            if entry.get('kind') == 'val':
                points.append({
                    'run': run.name,
                    'iteration': offset + int(entry['step']),
                    'miou': entry['miou'],
                    'val_size': list(size) if config.get('resize') else 'native',
                })  # fmt: skip
    return points


def _plot_curve(points: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for run in dict.fromkeys(p['run'] for p in points):
        mine = [p for p in points if p['run'] == run]
        size = mine[0]['val_size']
        label = (
            f'{run} (val at {size[0]}x{size[1]})' if size != 'native' else f'{run} (val 360x480)'
        )
        ax.plot([p['iteration'] for p in mine], [p['miou'] for p in mine], 'o-', label=label)
    ax.set_xlabel('iteration (batch 8)')
    ax.set_ylabel('CamVid val mIoU')
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc='lower right')
    ax.set_title('MFARANet from scratch on CamVid: learning curve')
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--checkpoint', required=True)
    parser.add_argument('--data-root', default=os.environ.get('SEGNODE_CAMVID_ROOT', ''))
    parser.add_argument('--runs', nargs='*', default=[], help='run folders, in training order')
    parser.add_argument('--json', required=True)
    parser.add_argument('--figures', required=True, help='folder for the PNGs')
    args = parser.parse_args()
    if not args.data_root:
        sys.exit('model_card: give --data-root or set SEGNODE_CAMVID_ROOT')
    figures = Path(args.figures)
    result: dict[str, Any] = {'checkpoint': args.checkpoint, 'command': ' '.join(sys.argv)}
    for name, flip in (('single_scale', False), ('flip', True)):
        print(f'evaluating {args.checkpoint} on CamVid val at 360x480 ({name})', flush=True)
        t0 = time.perf_counter()
        cfg = EvalConfig(args.checkpoint, 'camvid', args.data_root, 'val', flip=flip, device='cpu')
        summary, matrix = evaluate_checkpoint(cfg)
        summary['seconds'] = round(time.perf_counter() - t0, 1)
        print(format_table(summary))
        result[name] = summary
        if not flip:
            names = list(summary['per_class_iou'])
            title = f'CamVid val, single scale: mIoU {summary["miou"]:.4f}'
            save_confusion_png(matrix.matrix, names, figures / 'confusion.png', title)
    if args.runs:
        result['curve'] = _curve([Path(r) for r in args.runs])
        _plot_curve(result['curve'], figures / 'learning_curve.png')
    print(f'wrote {write_json(result, args.json)} and the PNGs under {figures}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
