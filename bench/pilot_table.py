"""The table of recipe pilots in docs/training.md, from their run folders.

A pilot is a run folder with ``model_final.pt`` scored by ``segnode eval --json`` into
``eval-<tag>.json`` files beside it (``eval-xseq-val.json``, ``eval-val.json``, or with a
``-native`` suffix when scored at the native size instead of ``--resize``). Each row gives
the pilot's mIoU on every scored split and the IoU of the weak classes on the first split::

    python bench/pilot_table.py runs/pilots/* --tags xseq-val val --json pilots.json

Rows are printed as a Markdown table in the order given; a folder lacking a score for every
tag is skipped with a note on stderr (a pilot still running).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
from typing import Any

from segnode.files import write_json

WEAK = ('pole', 'sign_symbol', 'pedestrian', 'bicyclist')


def pilot_row(folder: Path, tags: list[str], classes: tuple[str, ...]) -> dict[str, Any] | None:
    """One pilot's figures, or None when a tag has no score yet."""
    scores = {}
    for tag in tags:
        path = folder / f'eval-{tag}.json'
        if not path.is_file():
            return None
        scores[tag] = json.loads(path.read_text())
    first = scores[tags[0]]['per_class_iou']
    return {
        'pilot': folder.name,
        'miou': {tag: scores[tag]['miou'] for tag in tags},
        'class_iou': {name: first[name] for name in classes},
        'checkpoint': scores[tags[0]]['checkpoint'],
    }


def markdown(rows: list[dict[str, Any]], tags: list[str], classes: tuple[str, ...]) -> str:
    """The rows as a Markdown table, figures to three decimals."""
    head = ['pilot', *(f'{t} mIoU' for t in tags), *(f'{tags[0]} {c}' for c in classes)]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for row in rows:
        cells = [row['pilot'], *(f'{row["miou"][t]:.3f}' for t in tags)]
        cells += [f'{row["class_iou"][c]:.3f}' for c in classes]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('folders', nargs='+', type=Path, help='pilot run folders')
    parser.add_argument(
        '--tags', nargs='+', default=['xseq-val', 'val'], help='eval-<tag>.json files read'
    )
    parser.add_argument('--classes', nargs='+', default=list(WEAK), help='per-class columns')
    parser.add_argument('--json', type=Path, help='also write the rows here')
    args = parser.parse_args(argv)
    classes = tuple(args.classes)
    rows = []
    for folder in args.folders:
        if not folder.is_dir():
            continue
        try:
            row = pilot_row(folder, args.tags, classes)
        except (OSError, ValueError, KeyError) as exc:
            print(f'error: {folder}: unreadable score ({exc})', file=sys.stderr)
            return 2
        if row is None:
            print(f'{folder}: not scored on every tag yet, skipped', file=sys.stderr)
        else:
            rows.append(row)
    print(markdown(rows, args.tags, classes))
    if args.json:
        write_json({'tags': args.tags, 'rows': rows}, args.json)
    return 0


if __name__ == '__main__':
    sys.exit(main())
