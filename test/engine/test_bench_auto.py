"""``segnode bench`` with ``auto`` beside named backends: measured afresh, winner named."""

from __future__ import annotations

from typing import Any

import pytest

from segnode.config import EngineConfig
from segnode.engine.backends import BACKEND_TABLE
from segnode.engine.bench import markdown_table, run_bench
from segnode.errors import EngineUnavailable
from segnode.model import MFARANet


def test_auto_is_timed_beside_the_others(
    model: MFARANet, monkeypatch: pytest.MonkeyPatch, replaced: Any
) -> None:
    def absent(*args: object) -> None:
        raise EngineUnavailable('not in this test')

    for name in ('torch-compile', 'openvino'):
        monkeypatch.setitem(BACKEND_TABLE, name, replaced(name, build=absent))
    config = EngineConfig(device='cpu', precision='fp32', strict=True)
    result = run_bench(
        model, backends=['eager', 'auto'], height=64, width=96, warmup=0, runs=2,
        config=config, say=lambda line: None,
    )  # fmt: skip
    auto = result['backends']['auto']
    assert auto['status'] == 'ok' and auto['backend'] in ('eager', 'onnxruntime')
    assert auto['notes'][0].startswith('chosen by measurement: ')
    timed = [a for a in auto['attempts'] if a['ms'] is not None]
    assert {a['backend'] for a in timed} == {'onnxruntime fp32', 'eager fp32'}
    assert not any('choice remembered' in note for note in auto['notes'])  # bench measures
    assert f'| auto (chose {auto["backend"]}) | fp32 |' in markdown_table(result)
