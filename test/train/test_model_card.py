"""bench/model_card.py: learning curves of runs that continue one another."""

from __future__ import annotations

import json
from pathlib import Path
import shlex
from typing import Any, Callable

import pytest
import yaml


def _run(folder: Path, config: dict[str, Any], vals: dict[int, float], last: int) -> Path:
    folder.mkdir()
    (folder / 'config.yaml').write_text(yaml.safe_dump(config))
    lines = [{'kind': 'train', 'step': s, 'loss': 1.0} for s in range(10, last + 1, 10)]
    lines += [{'kind': 'val', 'step': s, 'miou': m} for s, m in vals.items()]
    (folder / 'metrics.jsonl').write_text('\n'.join(json.dumps(x) for x in lines) + '\n')
    return folder


def test_a_finish_run_continues_after_its_init(
    tmp_path: Path, bench_script: Callable[[str], Any]
) -> None:
    card = bench_script('model_card')
    low = {'val_split': 'xseq-val', 'resize': [180, 240], 'init': ''}
    one = _run(tmp_path / 'one', low, {1500: 0.4, 3000: 0.5}, last=3000)
    final = {'val_split': 'xseq-val', 'resize': None, 'init': str(one / 'model_final.pt')}
    two = _run(tmp_path / 'two', final, {200: 0.55, 400: 0.6}, last=400)
    cut = {'val_split': '', 'resize': None, 'init': str(one / 'state' / 'iter_0001500.pt')}
    three = _run(tmp_path / 'three', cut, {100: 0.45}, last=100)
    points = card._curve('recipe', [one, two]) + card._curve('cut', [one, three])
    got = [(p['curve'], p['iteration'], p['miou'], p['split'], p['val_size']) for p in points]
    assert got == [
        ('recipe', 1500, 0.4, 'xseq-val', [180, 240]),
        ('recipe', 3000, 0.5, 'xseq-val', [180, 240]),
        ('recipe', 3200, 0.55, 'xseq-val', 'native'),  # after model_final: the last step
        ('recipe', 3400, 0.6, 'xseq-val', 'native'),
        ('cut', 1500, 0.4, 'xseq-val', [180, 240]),
        ('cut', 3000, 0.5, 'xseq-val', [180, 240]),
        ('cut', 1600, 0.45, 'val', 'native'),  # from the state at 1,500
    ]


def test_main_writes_the_curve_and_refuses_a_folder_without_metrics(
    tmp_path: Path, bench_script: Callable[[str], Any]
) -> None:
    card = bench_script('model_card')
    run = _run(tmp_path / 'run', {'val_split': 'val'}, {100: 0.3}, last=100)
    out = tmp_path / 'card.json'
    figures = tmp_path / 'figures'
    argv = ['--curve', 'chosen recipe', str(run), '--json', str(out), '--figures', str(figures)]
    assert card.main(argv) == 0
    written = json.loads(out.read_text())
    assert written['curve'][0]['iteration'] == 100
    assert shlex.split(written['command'])[2:] == argv  # a label with a space stays one word
    assert (figures / 'learning_curve.png').stat().st_size > 0
    with pytest.raises(SystemExit, match='no metrics.jsonl in .*no$'):
        card.main(['--curve', 'a', str(tmp_path / 'no'), '--json', str(out), '--figures', 'f'])
    with pytest.raises(SystemExit, match='--compare a b val names a score no --eval makes'):
        card.main(['--compare', 'a', 'b', 'val', '--json', str(out), '--figures', 'f'])
