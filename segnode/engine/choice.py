"""``auto``: which engines are candidates here, how they are timed, and the remembered choice.

``engine.backend: auto`` and ``engine.precision: auto`` are resolved by measurement
(docs/engine.md, "Choosing by measurement"): every candidate (backend, precision) pair that
applies on this device is built and gated, the ones that pass are timed on the gate's frames,
and the fastest is kept. The choice is written to a small JSON record keyed by everything the
measurement depends on (model, shape, batch, device, library versions, the gate), so the next
start builds the winner only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
import datetime
import hashlib
import json
import os
from pathlib import Path
import platform
import statistics
import time
from typing import Any

import torch
from torch import Tensor

from segnode.config import EngineConfig
import segnode.cpu as cpu
from segnode.engine.artifacts import FORMAT
from segnode.engine.backends import AUTO_ORDER, BACKEND_TABLE
from segnode.files import atomic_write

__all__ = [
    'Candidate',
    'candidates',
    'choice_dir',
    'choice_key',
    'cpu_model',
    'precisions',
    'read_choice',
    'resolve_precision',
    'time_calls',
    'write_choice',
]

Candidate = tuple[str, str]  # (backend, precision)
TIMED_CALLS = 3  # after one warm-up call; the median is kept


def precisions(config: EngineConfig, device: torch.device, *, int8: bool) -> tuple[str, ...]:
    """``config.precision``, or what ``precision: auto`` measures on ``device``, first guess first.

    The one ``precision: auto`` policy: fp16 first on CUDA, fp32 first on a CPU; bf16 where
    the device runs it; int8 when there are calibration frames for INT8 quantisation.
    """
    if config.precision != 'auto':
        return (config.precision,)
    if device.type == 'cuda':
        found = ['fp16', 'fp32']
        if torch.cuda.is_bf16_supported():
            found.insert(1, 'bf16')
    else:
        found = ['fp32', 'bf16'] if cpu.native_bf16() else ['fp32']
    return (*found, 'int8') if int8 else tuple(found)


def resolve_precision(config: EngineConfig, device: torch.device) -> str:
    """The one precision an export builds: ``config.precision``, or auto's first guess."""
    return precisions(config, device, int8=False)[0]


def candidates(config: EngineConfig, device: torch.device, *, int8: bool) -> list[Candidate]:
    """The (backend, precision) pairs ``config`` allows on ``device``, fastest-first guess.

    Args:
        config: ``backend`` and ``precision``, each ``auto`` or named.
        device: The resolved device.
        int8: Calibration frames exist, so int8 is a candidate of ``precision: auto``.
    """
    backends = AUTO_ORDER[device.type] if config.backend == 'auto' else (config.backend,)
    wanted = precisions(config, device, int8=int8)
    if config.precision != 'auto':
        return [(b, wanted[0]) for b in backends]
    runs = {b: BACKEND_TABLE[b].PRECISIONS.get(device.type, ()) for b in backends}
    pairs = [(b, p) for b in backends for p in wanted if p in runs[b]]
    return pairs or [(backends[0], wanted[0])]  # refused with the backend's own reason


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _device_name(device: torch.device) -> str:
    if device.type == 'cuda':
        return str(torch.cuda.get_device_properties(device).name)
    flags = sorted(cpu.flags() & {'amx_bf16', 'amx_int8', 'avx512_bf16', 'avx512_vnni'})
    return f'{cpu_model()} [{",".join(flags)}] x{torch.get_num_threads()}'


def _library_versions() -> dict[str, str]:
    from segnode.engine.openvino import version
    from segnode.engine.tensorrt.backend import trt_versions

    versions = {'torch': torch.__version__, **trt_versions()}
    if version():
        versions['openvino'] = version()
    try:
        import onnxruntime

        versions['onnxruntime'] = str(onnxruntime.__version__)
    except ImportError:
        pass
    return versions


def choice_key(
    config: EngineConfig,
    device: torch.device,
    *,
    checkpoint_sha256: str,
    batch: int,
    height: int,
    width: int,
    pairs: list[Candidate],
) -> dict[str, Any]:
    """Everything the measurement depends on: equal keys mean the same winner."""
    c = config
    key = {
        'checkpoint_sha256': checkpoint_sha256,
        'batch': batch,
        'height': height,
        'width': width,
        'dynamic': c.dynamic,
        'max_side': c.max_side if c.dynamic else None,
        'input_size': list(c.input_size) if c.input_size else None,
        'bgr': c.bgr,
        'candidates': [list(p) for p in pairs],
        'device': _device_name(device),
        'versions': _library_versions(),
        'gate': {
            'on': c.parity_gate,
            'images': c.parity_images,
            'labels': c.parity_labels,
            'frames': c.parity_frames,
            'min_agreement': c.min_agreement,
            'tie_margin': c.tie_margin,
            'max_miou_drop': c.max_miou_drop,
        },
        'calibration': [c.calibration_images, c.calibration_frames],
        'openvino_device': c.openvino_device,
        'artifact_format': FORMAT,  # a new graph recipe is measured again
    }
    if c.confidence:  # only then: the choices remembered before the option still apply
        key['confidence'] = {'max_diff': c.max_confidence_diff}
    return key


def choice_dir(config: EngineConfig) -> Path:
    """Where choices are remembered: ``artifact_dir``, else ``$XDG_CACHE_HOME/segnode``."""
    if config.artifact_dir:
        return Path(config.artifact_dir)
    cache = os.environ.get('XDG_CACHE_HOME') or str(Path.home() / '.cache')
    return Path(cache) / 'segnode' / 'choices'


def _choice_path(folder: Path, key: Mapping[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return folder / f'choice-b{key["batch"]}-{key["height"]}x{key["width"]}-{digest}.json'


def read_choice(folder: Path, key: Mapping[str, Any]) -> tuple[Candidate, Path] | None:
    """The remembered winner for exactly this key, or None (absent, unreadable, other key)."""
    path = _choice_path(folder, key)
    try:
        record = json.loads(path.read_text(encoding='utf-8'))
        if record.get('key') != json.loads(json.dumps(key)):
            return None
        return (str(record['backend']), str(record['precision'])), path
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_choice(
    folder: Path, key: Mapping[str, Any], winner: Candidate, measured: list[dict[str, Any]]
) -> Path:
    """Remember a measurement (atomically); returns the record's path."""
    path = _choice_path(folder, key)
    record = {
        'key': key,
        'backend': winner[0],
        'precision': winner[1],
        'measured': measured,
        'written': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
    }
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(record, indent=2) + '\n'))
    return path


def time_calls(run: Callable[[Tensor], Tensor], frames: Tensor, device: torch.device) -> float:
    """Median milliseconds of ``TIMED_CALLS`` calls after one warm-up call."""

    def sync() -> None:
        if device.type == 'cuda':
            torch.cuda.synchronize(device)

    times = []
    for i in range(TIMED_CALLS + 1):
        sync()
        start = time.perf_counter()
        run(frames)
        sync()
        if i:
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)
