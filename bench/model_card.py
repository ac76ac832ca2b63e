"""The figures of docs/model-card.md: checkpoints scored on named splits, and learning curves.

Each ``--eval LABEL CHECKPOINT SPLIT`` scores one checkpoint on one CamVid split at 360x480,
single scale and (with ``--flip``) flipped too, and saves its confusion matrix as
``FIGURES/confusion-LABEL-SPLIT.png``. Each ``--compare A B SPLIT`` says how sure the
difference between two of those scores is (single scale): a paired bootstrap over the
split's images, 2,000 resamples, with a 95 % interval for mIoU and per class. Each
``--curve LABEL RUN [RUN ...]`` draws the validations of runs that trained one model, in
order, on one iteration axis::

    SEGNODE_CAMVID_ROOT=../shared/data/camvid python bench/model_card.py \
        --eval recipe runs/xseq-long-finish/model_final.pt xseq-val \
        --eval today runs/xseq-today-finish/model_final.pt xseq-val \
        --compare recipe today xseq-val \
        --curve recipe runs/xseq-long runs/xseq-long-finish \
        --json bench/results/model_card.json --figures docs/figures

A run folder is read for its metrics.jsonl (val lines) and config.yaml (val split and size).
A later run continues where the one before it stopped: at the iteration of its ``init``
state (``iter_0002250.pt``), or after the previous run's last step (``model_final.pt``).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import re
import shlex
import sys
import time
from typing import Any

import numpy as np
import yaml

from segnode.files import write_json
from segnode.metrics import format_table, paired_bootstrap, save_confusion_png
from segnode.train.config import EvalConfig
from segnode.train.evaluate import evaluate_checkpoint


def _curve(label: str, runs: list[Path]) -> list[dict[str, Any]]:
    """Every validation of ``runs``, in order, on one iteration axis."""
    points: list[dict[str, Any]] = []
    offset = last = 0
    for run in runs:
        config = yaml.safe_load((run / 'config.yaml').read_text())
        init = re.search(r'iter_(\d+)\.pt$', str(config.get('init') or ''))
        offset = int(init.group(1)) if init else last
        size = config.get('resize')
        lines = [json.loads(line) for line in (run / 'metrics.jsonl').read_text().splitlines()]
        for entry in lines:
            if entry.get('kind') == 'val':
                points.append({
                    'curve': label,
                    'run': run.name,
                    'iteration': offset + int(entry['step']),
                    'miou': entry['miou'],
                    'split': config.get('val_split') or 'val',
                    'val_size': list(size) if size else 'native',
                })  # fmt: skip
        last = offset + max((int(e.get('step', 0)) for e in lines), default=0)
    return points


def _plot_curves(points: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for (curve, run), marker in zip(
        dict.fromkeys((p['curve'], p['run']) for p in points), 'os^vD<>ph'
    ):
        mine = [p for p in points if p['curve'] == curve and p['run'] == run]
        size = mine[0]['val_size']
        at = '360x480' if size == 'native' else f'{size[0]}x{size[1]}'
        ax.plot(
            [p['iteration'] for p in mine],
            [p['miou'] for p in mine],
            marker + '-',
            label=f'{curve}: {run} ({mine[0]["split"]} at {at})',
        )
    ax.set_xlabel('iteration (batch 8)')
    ax.set_ylabel("mIoU on the run's validation split")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc='lower right', fontsize=8)
    ax.set_title('MFARANet from scratch on CamVid: learning curves')
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _per_class_rows(scores: list[dict[str, Any]]) -> str:
    """A Markdown table of per-class IoU, one column per single-scale score."""
    heads = [f'{s["label"]}, {s["split"]}' for s in scores]
    rows = ['| class | ' + ' | '.join(heads) + ' |', '|---' * (len(heads) + 1) + '|']
    for name in scores[0]['single_scale']['per_class_iou']:
        ious = [f'{s["single_scale"]["per_class_iou"][name]:.4f}' for s in scores]
        rows.append(f'| {name} | ' + ' | '.join(ious) + ' |')
    rows.append('| **mIoU** | ' + ' | '.join(f'{s["single_scale"]["miou"]:.4f}' for s in scores))
    rows[-1] += ' |'
    return '\n'.join(rows)


def _score(
    label: str, checkpoint: str, split: str, args: argparse.Namespace
) -> tuple[dict[str, Any], np.ndarray]:
    """The score of one checkpoint on one split, and its per-image matrices (single scale)."""
    score: dict[str, Any] = {'label': label, 'checkpoint': checkpoint, 'split': split}
    per_image: list[np.ndarray] = []
    for name, flip in (('single_scale', False), ('flip', True))[: 2 if args.flip else 1]:
        print(f'evaluating {label} ({checkpoint}) on CamVid {split} ({name})', flush=True)
        t0 = time.perf_counter()
        cfg = EvalConfig(checkpoint, 'camvid', args.data_root, split, flip=flip, device='cpu')
        summary, matrix = evaluate_checkpoint(cfg, per_image=None if flip else per_image)
        summary['seconds'] = round(time.perf_counter() - t0, 1)
        print(format_table(summary))
        score[name] = summary
        if not flip:
            names = list(summary['per_class_iou'])
            title = f'{label}, CamVid {split}, single scale: mIoU {summary["miou"]:.4f}'
            png = Path(args.figures) / f'confusion-{label}-{split}.png'
            save_confusion_png(matrix.matrix, names, png, title)
    return score, np.stack(per_image)


def _compare(a: str, b: str, split: str, scored: dict[tuple[str, str], Any]) -> dict[str, Any]:
    """The paired bootstrap of score ``a`` against score ``b`` on ``split``."""
    (score, stack_a), (_, stack_b) = scored[a, split], scored[b, split]
    found = paired_bootstrap(stack_a, stack_b)
    names = list(score['single_scale']['per_class_iou'])
    per_class = found.pop('per_class')
    found = {'a': a, 'b': b, 'split': split, **found, 'per_class': {
        name: {key: per_class[key][k] for key in per_class} for k, name in enumerate(names)
    }}  # fmt: skip
    print(
        f'{a} - {b} on {split}: mIoU {found["miou_difference"]:+.4f} (95 % interval '
        f'{found["low"]:+.4f} to {found["high"]:+.4f}; {a} higher in '
        f'{found["share_a_better"]:.1%} of {found["resamples"]} resamples of '
        f'{found["images"]} images)'
    )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--eval', nargs=3, action='append', default=[], metavar=('LABEL', 'CHECKPOINT', 'SPLIT'),
        help='score CHECKPOINT on a CamVid split (val, xseq-val, ...); repeat for more',
    )  # fmt: skip
    parser.add_argument(
        '--curve', nargs='+', action='append', default=[], metavar='LABEL RUN',
        help='a label, then the run folders that trained one model, in order; repeat for more',
    )  # fmt: skip
    parser.add_argument(
        '--compare', nargs=3, action='append', default=[], metavar=('A', 'B', 'SPLIT'),
        help='a paired bootstrap of two --eval labels scored on SPLIT; repeat for more',
    )  # fmt: skip
    parser.add_argument('--flip', action='store_true', help='also score with flip averaging')
    parser.add_argument('--data-root', default=os.environ.get('SEGNODE_CAMVID_ROOT', ''))
    parser.add_argument('--json', required=True)
    parser.add_argument('--figures', required=True, help='folder for the PNGs')
    args = parser.parse_args(argv)
    if args.eval and not args.data_root:
        sys.exit('model_card: give --data-root or set SEGNODE_CAMVID_ROOT')
    if any(len(c) < 2 for c in args.curve):
        sys.exit('model_card: --curve needs a label and at least one run folder')
    missing = [r for c in args.curve for r in c[1:] if not (Path(r) / 'metrics.jsonl').is_file()]
    if missing:
        sys.exit(f'model_card: no metrics.jsonl in {", ".join(missing)}')
    evals = {(label, split) for label, _, split in args.eval}
    unscored = [c for c in args.compare if not {(c[0], c[2]), (c[1], c[2])} <= evals]
    if unscored:
        sys.exit(f'model_card: --compare {" ".join(unscored[0])} names a score no --eval makes')
    given = sys.argv[1:] if argv is None else argv
    result: dict[str, Any] = {'command': shlex.join(['python', 'bench/model_card.py', *given])}
    scored = {(e[0], e[2]): _score(*e, args) for e in args.eval}
    result['scores'] = [score for score, _ in scored.values()]
    result['comparisons'] = [_compare(a, b, split, scored) for a, b, split in args.compare]
    if args.curve:
        result['curve'] = [p for c in args.curve for p in _curve(c[0], [Path(r) for r in c[1:]])]
        _plot_curves(result['curve'], Path(args.figures) / 'learning_curve.png')
    if result['scores']:
        print(_per_class_rows(result['scores']))
    print(f'wrote {write_json(result, args.json)} and the PNGs under {args.figures}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
