"""``segnode export`` and ``segnode bench`` on a CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segnode.cli import main


def test_export_onnxruntime_writes_artifact_and_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ['export', '--backend', 'onnxruntime', '--size', '64', '96', '--dynamic', '--device',
         'cpu', '--out', str(tmp_path)]
    )  # fmt: skip
    assert code == 0
    captured = capsys.readouterr()
    assert 'note: checkpoint ' in captured.err and 'camvid_mfaranet.pt' in captured.err
    assert 'exported onnxruntime fp32 engine ->' in captured.out and 'agreement' in captured.out
    names = sorted(p.suffix for p in tmp_path.iterdir())
    assert names == ['.json', '.onnx']


def test_export_confidence_writes_its_own_artifact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ['export', '--backend', 'onnxruntime', '--size', '64', '96', '--device', 'cpu',
            '--confidence', '--out', str(tmp_path)]  # fmt: skip
    assert main(args) == 0
    assert 'confidence p99 ' in capsys.readouterr().out
    (manifest,) = tmp_path.glob('*.json')
    assert json.loads(manifest.read_text())['key']['confidence'] is True
    assert '-conf-' in manifest.name


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
    assert result['settings']['timing'].startswith('in turns')
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
    assert 'every row timed in turns with the others' in table
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


def test_bench_takes_a_precision_per_backend(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json = tmp_path / 'bench.json'
    code = main(
        ['bench', '--size', '64', '96', '--backends', 'eager:fp32,onnxruntime:bf16', '--device',
         'cpu', '--precision', 'fp32', '--warmup', '0', '--runs', '1', '--json', str(out_json)]
    )  # fmt: skip
    assert code == 0
    backends = json.loads(out_json.read_text())['backends']
    assert backends['eager:fp32']['status'] == 'ok'
    assert backends['eager:fp32']['precision'] == 'fp32'
    refused = backends['onnxruntime:bf16']
    assert refused['status'] == 'unavailable'
    assert 'runs fp32 or int8, not bf16' in refused['reason']


def test_bench_rejects_unknown_precisions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(['bench', '--backends', 'eager,eager:fp8']) == 2
    assert '--backends: unknown precision in eager:fp8' in capsys.readouterr().err


def test_bench_marks_rows_timed_under_a_lowered_gate(tmp_path: Path) -> None:
    out_md = tmp_path / 'bench.md'
    code = main(
        ['bench', '--size', '64', '96', '--backends', 'eager', '--device', 'cpu', '--warmup',
         '0', '--runs', '1', '--min-agreement', '0.95', '--markdown', str(out_md)]
    )  # fmt: skip
    assert code == 0
    assert '(gate lowered to 95.00%)' in out_md.read_text()


def test_bench_rejects_an_agreement_outside_0_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(['bench', '--min-agreement', '99.9']) == 2
    assert '--min-agreement must be in [0, 1], got 99.9' in capsys.readouterr().err


def test_bench_times_an_exported_artifact_and_warns_about_a_p99_of_few_calls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    size = ['--size', '64', '96', '--device', 'cpu']
    assert main(['export', '--backend', 'onnxruntime', *size, '--out', str(tmp_path / 'eng')]) == 0
    out_json, out_md = tmp_path / 'bench.json', tmp_path / 'bench.md'
    code = main(
        ['bench', *size, '--backends', 'onnxruntime', '--artifact-dir', str(tmp_path / 'eng'),
         '--runs', '3', '--json', str(out_json), '--markdown', str(out_md)]
    )  # fmt: skip
    assert code == 0
    result = json.loads(out_json.read_text())
    (onnx,) = sorted((tmp_path / 'eng').glob('*.onnx'))
    assert result['backends']['onnxruntime']['artifact'] == str(onnx)
    assert result['warnings'][0].startswith('p99 from 3 calls is close to the slowest call')
    assert 'Warnings:' in out_md.read_text()
    assert f'onnxruntime: loaded {onnx}' in capsys.readouterr().out
    assert main(['bench', *size, '--artifact-dir', str(tmp_path / 'none')]) == 2


def test_tail_warnings_name_a_wide_spread_only() -> None:
    from segnode.engine.bench import tail_warnings

    calm, busy = {'p50_ms': 10.0, 'p99_ms': 11.0}, {'p50_ms': 10.0, 'p99_ms': 30.0}
    assert tail_warnings({'a': calm, 'b': busy}, 500) == []
    (few,) = tail_warnings({'a': calm}, 5)
    assert 'p99 from 5 calls' in few
    _, wide = tail_warnings({'a': calm, 'b': busy}, 5)
    assert 'for b, up to 3.0x (b)' in wide


def test_rows_are_timed_in_turns_each_round_starting_one_further() -> None:
    from types import SimpleNamespace

    from segnode.engine.bench import _in_turns

    calls: list[str] = []

    class Stub:
        """A segmenter that records its calls."""

        def __init__(self, name: str) -> None:
            self.name = name

        def segment_batch(self, frames: object) -> SimpleNamespace:
            calls.append(self.name)
            return SimpleNamespace(timings=len(calls))

    def baseline() -> float:
        calls.append('base')
        return float(len(calls))

    segs = {'a': Stub('a'), 'b': Stub('b')}
    base, timings = _in_turns(baseline, segs, None, warmup=1, runs=3)  # type: ignore[arg-type]
    rounds = [calls[i : i + 3] for i in range(0, len(calls), 3)]
    assert rounds == [['base', 'a', 'b'], ['a', 'b', 'base'], ['b', 'base', 'a'],
                      ['base', 'a', 'b']]  # fmt: skip
    assert base == [6.0, 8.0, 10.0]  # the warm-up round is not kept
    assert timings['a'] == [4, 9, 11] and timings['b'] == [5, 7, 12]
