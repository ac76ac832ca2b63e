"""``segnode export`` and ``segnode bench`` on a CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segnode.cli import main


def test_export_onnxruntime_writes_artefact_and_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ['export', '--backend', 'onnxruntime', '--size', '64', '96', '--dynamic', '--device',
         'cpu', '--out', str(tmp_path)]
    )  # fmt: skip
    assert code == 0
    captured = capsys.readouterr()
    assert 'RANDOM weights' in captured.err
    assert 'exported onnxruntime fp32 engine ->' in captured.out and 'agreement' in captured.out
    names = sorted(p.suffix for p in tmp_path.iterdir())
    assert names == ['.json', '.onnx']


def test_export_refuses_int8_without_calibration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ['export', '--backend', 'tensorrt', '--size', '64', '96', '--precision', 'int8',
         '--out', str(tmp_path)]
    )  # fmt: skip
    assert code == 2
    assert '--precision int8 needs --calibration DIR' in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_export_of_tensorrt_on_a_cpu_is_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ['export', '--backend', 'tensorrt', '--size', '64', '96', '--device', 'cpu',
         '--out', str(tmp_path)]
    )  # fmt: skip
    assert code == 2
    assert capsys.readouterr().err.strip().endswith('TensorRT needs a CUDA device '
                                                    '(engine.device is the CPU)')  # fmt: skip


def test_bench_reports_baseline_backends_and_skips_the_unavailable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json, out_md = tmp_path / 'bench.json', tmp_path / 'bench.md'
    code = main(
        ['bench', '--size', '64', '96', '--backends', 'eager,onnxruntime,tensorrt', '--device',
         'cpu', '--warmup', '1', '--runs', '2', '--json', str(out_json), '--markdown',
         str(out_md)]
    )  # fmt: skip
    assert code == 0
    result = json.loads(out_json.read_text())
    assert result['baseline_p50_ms'] > 0 and result['settings']['size'] == [64, 96]
    assert result['model']['parameters'] > 1_000_000 and result['model']['gmac_per_frame'] > 0
    assert result['machine']['cpu'] and result['machine']['torch']
    for name in ('eager', 'onnxruntime'):
        entry = result['backends'][name]
        assert entry['status'] == 'ok' and entry['parity']['passed']
        assert entry['p50_ms'] > 0 and entry['engine']['p50_ms'] > 0
        assert entry['speedup'] == pytest.approx(
            result['baseline_p50_ms'] / entry['p50_ms'], rel=1e-2
        )
        assert entry['host_overhead_ms'] >= 0
    skipped = result['backends']['tensorrt']
    assert skipped['status'] == 'unavailable' and 'CUDA device' in skipped['reason']
    table = out_md.read_text()
    assert '| paper protocol (eager fp32, model only) |' in table
    assert '| onnxruntime | fp32 |' in table and 'unavailable' in table
    assert 'tensorrt: skipped: TensorRT needs a CUDA device' in capsys.readouterr().out


def test_bench_strict_fails_on_an_unavailable_backend(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ['bench', '--size', '64', '96', '--backends', 'tensorrt', '--device', 'cpu', '--runs',
         '1', '--strict']
    )  # fmt: skip
    assert code == 2
    assert 'TensorRT needs a CUDA device' in capsys.readouterr().err


def test_bench_rejects_unknown_backends(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(['bench', '--backends', 'eager,tvm']) == 2
    assert '--backends: unknown tvm' in capsys.readouterr().err
