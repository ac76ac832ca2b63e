"""bench/pilot_table.py: the pilots' table from their eval JSON files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest


def _score(folder: Path, tag: str, miou: float, pole: float) -> None:
    folder.mkdir(exist_ok=True)
    per_class = {'pole': pole, 'sign_symbol': 0.5, 'pedestrian': 0.25, 'bicyclist': 0.0}
    text = json.dumps({'miou': miou, 'per_class_iou': per_class, 'checkpoint': 'x.pt'})
    (folder / f'eval-{tag}.json').write_text(text)


def test_rows_in_order_unscored_pilot_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bench_script: Callable[[str], Any]
) -> None:
    table = bench_script('pilot_table')
    _score(tmp_path / 'b', 'xseq-val', 0.3204, 0.03)
    _score(tmp_path / 'b', 'val', 0.5, 0.1)
    _score(tmp_path / 'a', 'xseq-val', 0.30, 0.0)  # no val score yet: still running
    out_json = tmp_path / 'rows.json'
    args = [str(tmp_path / 'b'), str(tmp_path / 'a'), '--json', str(out_json)]
    assert table.main(args) == 0  # type: ignore[attr-defined]
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith('| pilot | xseq-val mIoU | val mIoU | xseq-val pole')
    assert lines[2] == '| b | 0.320 | 0.500 | 0.030 | 0.500 | 0.250 | 0.000 |'
    assert len(lines) == 3 and 'a: not scored on every tag yet' in err
    assert json.loads(out_json.read_text())['rows'][0]['class_iou']['pole'] == 0.03
