"""``segnode bench``: the paper's protocol and each backend, side by side, on the same frames.

Baseline (the official code's speed protocol; docs/model.md, "Counting conventions and MAC
shares"): eager fp32, batch 1, ``eval()`` without ``no_grad``, the model alone on a normalised
float tensor (no preprocessing, argmax or copies), synchronised.
Backends: the whole frame path through :class:`~segnode.engine.segmenter.Segmenter` (uint8 frames
in, uint8 masks out) built with the parity gate; "engine" is the engine stage of those same
calls (CUDA events on a GPU) and "host overhead" the rest of each call (staging, copies, mask
handling). Warm-up calls are excluded. The baseline is timed before the backends and again
after them, and its calls pooled, so a machine whose speed drifts during the run favours
neither side. The speed-up of a backend is that pooled baseline p50 divided by the backend's
frame-path p50, so the backend is charged for the work the baseline skips.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
import os
import platform
import resource
import time
from typing import Any

import numpy as np
import torch

from segnode.config import EngineConfig, resolve_device
from segnode.engine.choice import cpu_model
from segnode.engine.segmenter import Segmenter
from segnode.engine.tensorrt.backend import trt_versions
from segnode.errors import SegnodeError
from segnode.metrics import percentiles
from segnode.model.complexity import conv_macs, count_parameters
from segnode.model.deploy import IMAGENET_MEAN, IMAGENET_STD
from segnode.model.fold import fold_equalizers
from segnode.model.mfaranet import MFARANet
from segnode.synthetic import synthetic_street

__all__ = ['machine_description', 'markdown_table', 'percentile_ms', 'run_bench', 'split_backend']

Say = Callable[[str], None]
GATE_AGREEMENT = EngineConfig.min_agreement  # the default gate; lower ones are marked


def percentile_ms(values: Sequence[float]) -> dict[str, float]:
    """p50, p90 and p99 (linear interpolation) in milliseconds, rounded to 0.001 ms."""
    qs = (50, 90, 99)
    return {f'p{q}_ms': round(v, 3) for q, v in zip(qs, percentiles(values, qs), strict=True)}


def split_backend(spec: str) -> tuple[str, str]:
    """``'torch-compile:bf16'`` -> ``('torch-compile', 'bf16')``; no suffix: ``(spec, '')``."""
    backend, _, precision = spec.partition(':')
    return backend, precision


def machine_description(device: torch.device) -> dict[str, Any]:
    """Hardware and software the figures were measured with."""
    try:
        import onnxruntime

        ort_version = str(onnxruntime.__version__)
    except ImportError:
        ort_version = ''
    info: dict[str, Any] = {
        'cpu': cpu_model(),
        'logical_cpus': os.cpu_count(),
        'torch_threads': torch.get_num_threads(),
        'load_average': [round(x, 2) for x in os.getloadavg()],
        'python': platform.python_version(),
        'platform': platform.platform(),
        'torch': torch.__version__,
        'onnxruntime': ort_version,
        **trt_versions(),
        'device': str(device),
    }
    if device.type == 'cuda':
        props = torch.cuda.get_device_properties(device)
        info['gpu'] = props.name
        info['compute_capability'] = f'sm_{props.major}{props.minor}'
        info['cuda'] = torch.version.cuda
    return info


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _baseline(
    model: MFARANet, frame: np.ndarray, device: torch.device, warmup: int, runs: int
) -> list[float]:
    """The paper's FPS protocol: eager fp32 eval, autograd on, float input, batch 1."""
    net = fold_equalizers(model).to(device).float().eval()  # no equalizers in the paper
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1) * 255
    x = torch.from_numpy(frame).to(device).permute(2, 0, 1)[None].float()
    x = (x - mean) / std
    times = []
    for i in range(warmup + runs):
        _sync(device)
        start = time.perf_counter()
        net(x)
        _sync(device)
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1e3)
    return times


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == 'cuda':
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _run_backend(
    name: str,
    model: MFARANet,
    frames: np.ndarray,
    base: EngineConfig,
    warmup: int,
    runs: int,
    say: Say,
    checkpoint_sha256: str = '',
) -> dict[str, Any]:
    backend, precision = split_backend(name)
    config = replace(base, backend=backend, precision=precision or base.precision)
    if 'auto' in (config.backend, config.precision):  # measure afresh; a refusal is no error
        config = replace(config, strict=False, remember_choice=False)
    batch, height, width = frames.shape[:3]
    device = torch.device(base.device)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    seg = Segmenter.build(
        model, config, height=height, width=width, batch=batch, checkpoint_sha256=checkpoint_sha256
    )
    build_s = time.perf_counter() - start
    how = f'loaded {seg.report.artefact}' if seg.report.artefact else 'built'
    say(f'  {name}: {how} in {build_s:.1f} s ({seg.report.parity.get("source", "no")} gate); '
        f'timing {warmup} + {runs} calls')  # fmt: skip
    for _ in range(warmup):
        seg.segment_batch(frames)
    totals, infers, hosts, uploads, downloads = [], [], [], [], []
    for _ in range(runs):
        t = seg.segment_batch(frames).timings
        totals.append(t.total_ms)
        infers.append(t.infer_ms)
        hosts.append(t.host_ms)
        uploads.append(t.upload_ms)
        downloads.append(t.download_ms)
    frame = percentile_ms(totals)
    return {
        'status': 'ok',
        'backend': seg.engine.backend,
        'precision': seg.engine.precision,
        'device': str(seg.engine.device),
        **frame,
        'engine': percentile_ms(infers),
        'host_overhead_ms': round(float(np.median(hosts)), 3),
        'upload_ms': round(float(np.median(uploads)), 3),
        'download_ms': round(float(np.median(downloads)), 3),
        'fps': round(batch * 1e3 / frame['p50_ms'], 3),
        'peak_memory_mb': _peak_memory_mb(seg.engine.device),
        'build_s': round(build_s, 1),
        'artefact': seg.report.artefact or None,  # the exported file timed, if one was loaded
        'parity': seg.report.parity,
        'attempts': [a.__dict__ for a in seg.report.attempts],
        'notes': seg.report.notes,
    }


def run_bench(
    model: MFARANet,
    *,
    backends: Sequence[str],
    height: int,
    width: int,
    batch: int = 1,
    warmup: int = 1,
    runs: int = 5,
    config: EngineConfig | None = None,
    weights: str = '',
    strict: bool = False,
    say: Say = print,
    checkpoint_sha256: str = '',
) -> dict[str, Any]:
    """Measure the paper protocol and every backend; returns the JSON-ready result.

    Args:
        model: The unfolded eval-mode model.
        backends: Backend names, in order, each optionally with its own precision
            (``torch-compile:bf16``; otherwise ``config.precision``).
        height: Frame height.
        width: Frame width.
        batch: Frames per call for the backends (the baseline is always batch 1).
        warmup: Untimed calls first.
        runs: Timed calls.
        config: Device, precision, threads (``backend`` is set per run).
        weights: What the weights are (reported).
        strict: Raise when a backend cannot be built instead of reporting it and continuing.
        say: Progress output.
        checkpoint_sha256: The checkpoint file's hash, which keys exported artefacts (as the
            node and ``segnode export`` key them); '' hashes the weights instead.
    """
    config = config or EngineConfig(device='auto')
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    config = replace(config, device=str(device), build_if_missing=not config.artifact_dir)
    frames = np.stack([synthetic_street(height, width, seed=i) for i in range(batch)])
    result: dict[str, Any] = {
        'machine': machine_description(device),
        'settings': {
            'size': [height, width],
            'batch': batch,
            'warmup': warmup,
            'runs': runs,
            'device': str(device),
            'precision': config.precision,
            'threads': torch.get_num_threads(),
            'frames': 'synthetic_street (the same frames for every backend)',
            'artifact_dir': config.artifact_dir or None,
        },
        'model': {
            'weights': weights,
            'num_classes': model.config.num_classes,
            'parameters': count_parameters(model),
            'gmac_per_frame': round(conv_macs(model, height, width) / 1e9, 2),
        },
    }
    say(f'baseline (paper protocol: eager fp32, batch 1) at {height}x{width} on {device}: '
        f'{warmup} + {runs} calls, before the backends and again after them')  # fmt: skip
    with torch.enable_grad():
        base_times = _baseline(model, frames[0], device, warmup, runs)
    passes = [percentile_ms(base_times)['p50_ms']]
    say(f'  baseline p50 {passes[0]:.1f} ms')
    result['backends'] = {}
    for name in backends:
        say(f'{name}: building and gating at {batch}x{height}x{width}')
        try:
            entry = _run_backend(name, model, frames, config, warmup, runs, say, checkpoint_sha256)
        except SegnodeError as err:
            if strict:
                raise
            say(f'  {name}: skipped: {err}')
            result['backends'][name] = {'status': 'unavailable', 'reason': str(err)}
            continue
        result['backends'][name] = entry
        say(f'  {name}: frame path p50 {entry["p50_ms"]:.1f} ms, engine p50 '
            f'{entry["engine"]["p50_ms"]:.1f} ms, host overhead {entry["host_overhead_ms"]:.3f} '
            f'ms, {passes[0] * batch / entry["p50_ms"]:.2f}x the first baseline pass')  # fmt: skip
    if result['backends']:
        # A shared machine's speed drifts over a long run: timing the baseline on both sides
        # of the backends and pooling the calls keeps the drift from favouring either.
        say('baseline again, after the backends')
        with torch.enable_grad():
            again = _baseline(model, frames[0], device, warmup, runs)
        passes.append(percentile_ms(again)['p50_ms'])
        base_times += again
        say(f'  baseline p50 {passes[1]:.1f} ms (first pass {passes[0]:.1f} ms)')
    base = percentile_ms(base_times)
    result['baseline'] = {
        'protocol': 'eager fp32, batch 1, eval() with autograd on, model only on a float '
        'input (no normalisation, argmax or copies): the official speed protocol, docs/model.md',
        **base,
        'fps': round(1e3 / base['p50_ms'], 3),
        'passes_p50_ms': [round(p, 3) for p in passes],
    }
    result['baseline_p50_ms'] = base['p50_ms']
    for entry in result['backends'].values():
        if entry.get('status') == 'ok':
            entry['speedup'] = round(base['p50_ms'] * batch / entry['p50_ms'], 3)
            entry['speedup_engine'] = round(base['p50_ms'] * batch / entry['engine']['p50_ms'], 3)
    ok = {k: v for k, v in result['backends'].items() if v.get('status') == 'ok'}
    result['warnings'] = tail_warnings({'baseline': base, **ok}, runs) + drift_warning(passes)
    for warning in result['warnings']:
        say(f'warning: {warning}')
    if ok:
        best = max(ok, key=lambda k: ok[k]['speedup'])
        result['best'] = {'backend': best, 'speedup': ok[best]['speedup']}
    result['machine']['load_average_end'] = [round(x, 2) for x in os.getloadavg()]
    return result


# p99 needs about 100 timed calls before it is more than the slowest one; a p99 of over
# 1.5 x p50 from fewer calls is one slow call (a busy machine, a clock change), not a tail.
TAIL_RUNS = 100
TAIL_SPREAD = 1.5


def tail_warnings(entries: dict[str, dict[str, Any]], runs: int) -> list[str]:
    """Why a p99 may mislead: too few calls, or a large spread measured from them."""
    if runs >= TAIL_RUNS:
        return []
    spread = {k: e['p99_ms'] / e['p50_ms'] for k, e in entries.items() if e.get('p50_ms')}
    wide = sorted(k for k, v in spread.items() if v > TAIL_SPREAD)
    notes = [f'p99 from {runs} calls is close to the slowest call; --runs {TAIL_RUNS} or more '
             'measures a tail']  # fmt: skip
    if wide:
        worst = max(wide, key=lambda k: spread[k])
        notes.append(
            f'large spread (p99 over {TAIL_SPREAD:g} x p50) for {", ".join(wide)}, up to '
            f'{spread[worst]:.1f}x ({worst}): the machine was busy or its clocks changed; '
            'rerun on a quiet machine'
        )
    return notes


DRIFT = 0.10  # the two baseline passes differ by more than this: say so


def drift_warning(passes: Sequence[float]) -> list[str]:
    """A warning when the baseline's two passes disagree (the machine's speed changed)."""
    if len(passes) < 2 or abs(passes[1] - passes[0]) <= DRIFT * min(passes):
        return []
    return [
        f'the baseline moved from {passes[0]:.1f} to {passes[1]:.1f} ms p50 during the run: '
        'the machine was busy or its clocks changed; the speed-ups use both passes'
    ]


def markdown_table(result: dict[str, Any]) -> str:
    """The result as a Markdown table (one row for the baseline, one per backend)."""
    s = result['settings']
    head = (
        f'{s["size"][0]}x{s["size"][1]}, batch {s["batch"]}, {s["device"]}, '
        f'{s["threads"]} threads, {s["warmup"]} warm-up + {s["runs"]} timed calls'
    )
    passes = result['baseline'].get('passes_p50_ms', [])
    if len(passes) > 1:
        head += (f'; the paper protocol timed before and after the backends (p50 {passes[0]:.1f} '
                 f'and {passes[1]:.1f} ms), its row pools both')  # fmt: skip
    head += '\n\n'
    rows = [
        '| backend | precision | frame p50 / p90 / p99 ms | engine p50 ms | host overhead ms '
        '| frames/s | speed-up vs paper protocol | peak memory MB | parity (agreement, largest '
        'flipped margin) | build s |',
        '|---|---|---|---|---|---|---|---|---|---|',
    ]
    b = result['baseline']
    rows.append(
        f'| paper protocol (eager fp32, model only) | fp32 | {b["p50_ms"]:.1f} / '
        f'{b["p90_ms"]:.1f} / {b["p99_ms"]:.1f} | {b["p50_ms"]:.1f} | - | {b["fps"]:.2f} | 1.00x '
        '| - | reference | - |'
    )
    for name, e in result['backends'].items():
        if e.get('status') != 'ok':
            reason = str(e.get('reason', '')).replace('|', '\\|')
            rows.append(f'| {name} | - | unavailable: {reason} | | | | | | | |')
            continue
        p = e.get('parity') or {}
        parity = f'{p["agreement"]:.4%}, {p.get("largest_flip_margin", 0):.3g}' if p else 'off'
        if p and p.get('min_agreement', GATE_AGREEMENT) < GATE_AGREEMENT:
            parity += f' (gate lowered to {p["min_agreement"]:.2%})'
        if split_backend(name)[0] == 'auto':
            name = f'{name} (chose {e.get("backend", "?")})'
        rows.append(
            f'| {name} | {e["precision"]} | {e["p50_ms"]:.1f} / {e["p90_ms"]:.1f} / '
            f'{e["p99_ms"]:.1f} | {e["engine"]["p50_ms"]:.1f} | {e["host_overhead_ms"]:.3f} | '
            f'{e["fps"]:.2f} | {e["speedup"]:.2f}x | {e["peak_memory_mb"]:.0f} | {parity} | '
            f'{e["build_s"]:.0f} |'
        )
    notes = ''.join(f'\n- {w}' for w in result.get('warnings', []))
    return head + '\n'.join(rows) + '\n' + (f'\nWarnings:{notes}\n' if notes else '')
