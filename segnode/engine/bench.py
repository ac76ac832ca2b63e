"""``segnode bench``: the paper's protocol and each backend, side by side, on the same frames.

Baseline (the official code's speed protocol; docs/model.md, "Counting conventions and MAC
shares"): eager fp32, batch 1, ``eval()`` without ``no_grad``, the model alone on a normalised
float tensor (no preprocessing, argmax or copies), synchronised.
Backends: the whole frame path through :class:`~segnode.engine.segmenter.Segmenter` (uint8 frames
in, uint8 masks out) built with the parity gate; "engine" is the engine stage of those same
calls (CUDA events on a GPU) and "host overhead" the rest of each call (staging, copies, mask
handling). Every backend is built and gated first; then the baseline and the backends are
timed in turns, one call each per round, so a machine whose speed drifts during the run (a
shared host) slows every row alike. Warm-up rounds are excluded. The speed-up of a backend is
the baseline p50 divided by the backend's frame-path p50, so the backend is charged for the
work the baseline skips.
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

from segnode.config import EngineConfig, IMAGENET_MEAN, IMAGENET_STD, resolve_device
from segnode.engine.choice import cpu_model
from segnode.engine.segmenter import FrameTimings, Segmenter
from segnode.engine.tensorrt.backend import trt_versions
from segnode.errors import SegnodeError
from segnode.metrics import percentiles
from segnode.model.complexity import conv_macs, count_parameters
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


def _baseline(model: MFARANet, frame: np.ndarray, device: torch.device) -> Callable[[], float]:
    """The paper's FPS protocol as one timed call: eager fp32 eval, autograd on, float input."""
    net = fold_equalizers(model).to(device).float().eval()  # no equalizers in the paper
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1) * 255
    x = torch.from_numpy(frame).to(device).permute(2, 0, 1)[None].float()
    x = (x - mean) / std

    def call() -> float:
        _sync(device)
        start = time.perf_counter()
        with torch.enable_grad():
            net(x)
        _sync(device)
        return (time.perf_counter() - start) * 1e3

    return call


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == 'cuda':
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _build_backend(
    name: str,
    model: MFARANet,
    frames: np.ndarray,
    base: EngineConfig,
    say: Say,
    checkpoint_sha256: str = '',
) -> tuple[Segmenter, float, float]:
    """Build (or load) one backend's segmenter, gated, and run it once.

    Returns it, its build seconds and the peak memory of the build and that call (on CUDA
    the peak since the caller reset it; on a CPU the process high-water mark).
    """
    backend, precision = split_backend(name)
    config = replace(base, backend=backend, precision=precision or base.precision)
    if 'auto' in (config.backend, config.precision):  # measure afresh; a refusal is no error
        config = replace(config, strict=False, remember_choice=False)
    batch, height, width = frames.shape[:3]
    start = time.perf_counter()
    seg = Segmenter.build(
        model, config, height=height, width=width, batch=batch, checkpoint_sha256=checkpoint_sha256
    )
    build_s = time.perf_counter() - start
    how = f'loaded {seg.report.artifact}' if seg.report.artifact else 'built'
    say(f'  {name}: {how} in {build_s:.1f} s ({seg.report.parity.get("source", "no")} gate)')
    seg.segment_batch(frames)
    return seg, build_s, _peak_memory_mb(seg.engine.device)


def _entry(
    seg: Segmenter, build_s: float, peak_mb: float, timings: list[FrameTimings], batch: int
) -> dict[str, Any]:
    """One backend's JSON entry from the timings of its timed calls."""
    frame = percentile_ms([t.total_ms for t in timings])
    return {
        'status': 'ok',
        'backend': seg.engine.backend,
        'precision': seg.engine.precision,
        'device': str(seg.engine.device),
        **frame,
        'engine': percentile_ms([t.infer_ms for t in timings]),
        'host_overhead_ms': round(float(np.median([t.host_ms for t in timings])), 3),
        'upload_ms': round(float(np.median([t.upload_ms for t in timings])), 3),
        'download_ms': round(float(np.median([t.download_ms for t in timings])), 3),
        'fps': round(batch * 1e3 / frame['p50_ms'], 3),
        'peak_memory_mb': peak_mb,
        'build_s': round(build_s, 1),
        'artifact': seg.report.artifact or None,  # the exported file timed, if one was loaded
        'parity': seg.report.parity,
        'attempts': [a.__dict__ for a in seg.report.attempts],
        'notes': seg.report.notes,
    }


def _in_turns(
    baseline: Callable[[], float],
    segs: dict[str, Segmenter],
    frames: np.ndarray,
    warmup: int,
    runs: int,
) -> tuple[list[float], dict[str, list[FrameTimings]]]:
    """Time the baseline and every segmenter in turns, one call each per round.

    Each round starts one place further along, so no backend always follows the same one.
    A machine whose speed drifts during the run (a shared host, a clock change) then slows
    every row alike, and the ratios stay fair.
    """
    order: list[str] = ['', *segs]  # '' is the baseline
    base: list[float] = []
    timings: dict[str, list[FrameTimings]] = {name: [] for name in segs}
    for i in range(warmup + runs):
        shift = i % len(order)
        for name in order[shift:] + order[:shift]:
            if not name:
                ms = baseline()
                base.extend([ms] if i >= warmup else [])
                continue
            t = segs[name].segment_batch(frames).timings
            timings[name].extend([t] if i >= warmup else [])
    return base, timings


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
        checkpoint_sha256: The checkpoint file's hash, which keys exported artifacts (as the
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
            'timing': 'in turns: one call of the baseline and of each backend per round',
            'artifact_dir': config.artifact_dir or None,
        },
        'model': {
            'weights': weights,
            'num_classes': model.config.num_classes,
            'parameters': count_parameters(model),
            'gmac_per_frame': round(conv_macs(model, height, width) / 1e9, 2),
        },
    }
    result['backends'] = {}
    segs: dict[str, tuple[Segmenter, float, float]] = {}
    for name in backends:
        say(f'{name}: building and gating at {batch}x{height}x{width}')
        if device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(device)
        try:
            segs[name] = _build_backend(name, model, frames, config, say, checkpoint_sha256)
        except SegnodeError as err:
            if strict:
                raise
            say(f'  {name}: skipped: {err}')
            result['backends'][name] = {'status': 'unavailable', 'reason': str(err)}
    say(f'timing the paper protocol (eager fp32, batch 1) and {len(segs)} backends in turns at '
        f'{height}x{width} on {device}: {warmup} + {runs} rounds')  # fmt: skip
    base_times, timings = _in_turns(
        _baseline(model, frames[0], device), {k: v[0] for k, v in segs.items()}, frames,
        warmup, runs,
    )  # fmt: skip
    base = percentile_ms(base_times)
    result['baseline'] = {
        'protocol': 'eager fp32, batch 1, eval() with autograd on, model only on a float '
        'input (no normalisation, argmax or copies): the official speed protocol, docs/model.md',
        **base,
        'fps': round(1e3 / base['p50_ms'], 3),
    }
    result['baseline_p50_ms'] = base['p50_ms']
    say(f'  baseline p50 {base["p50_ms"]:.1f} ms')
    for name in backends:
        if name not in segs:
            continue
        entry = _entry(*segs[name], timings[name], batch)
        entry['speedup'] = round(base['p50_ms'] * batch / entry['p50_ms'], 3)
        entry['speedup_engine'] = round(base['p50_ms'] * batch / entry['engine']['p50_ms'], 3)
        result['backends'][name] = entry
        say(f'  {name}: frame path p50 {entry["p50_ms"]:.1f} ms, engine p50 '
            f'{entry["engine"]["p50_ms"]:.1f} ms, host overhead {entry["host_overhead_ms"]:.3f} '
            f'ms, {entry["speedup"]:.2f}x the baseline')  # fmt: skip
    result['backends'] = {n: result['backends'][n] for n in backends}  # the order asked for
    ok = {k: v for k, v in result['backends'].items() if v.get('status') == 'ok'}
    result['warnings'] = tail_warnings({'baseline': base, **ok}, runs)
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


def markdown_table(result: dict[str, Any]) -> str:
    """The result as a Markdown table (one row for the baseline, one per backend)."""
    s = result['settings']
    head = (
        f'{s["size"][0]}x{s["size"][1]}, batch {s["batch"]}, {s["device"]}, '
        f'{s["threads"]} threads, {s["warmup"]} warm-up + {s["runs"]} timed rounds, every row '
        'timed in turns with the others\n\n'
    )
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
