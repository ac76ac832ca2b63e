"""Engine artifacts: what they are keyed by, their JSON manifests, and finding a match.

An artifact (``.ep`` TensorRT program, ``.onnx`` model, ``.pt2`` torch program) sits beside a
manifest ``<same name>.json`` holding its key and how it was built and checked. The key holds
everything an engine depends on: the checkpoint hash, the frame shape and batch, the graph
options, the precision and, where the file is tied to them, the GPU (name and compute
capability) and the torch / torch_tensorrt / TensorRT versions. A lookup either finds the
artifact with exactly this key or refuses the nearest one with a message naming what differs.
Files are written atomically: a temporary file in the same folder, then a rename.
"""

from __future__ import annotations

from collections.abc import Mapping
import datetime
import hashlib
import json
from pathlib import Path
from typing import Any, Final

import torch
from torch import nn

from segnode.engine.backends import BACKEND_TABLE
from segnode.errors import EngineBuildError
from segnode.files import atomic_write
from segnode.model.checkpoint import state_sha256
from segnode.version import __version__

__all__ = [
    'artifact_key',
    'artifact_path',
    'calibration_key',
    'differences',
    'find_artifact',
    'read_manifest',
    'weights_sha256',
    'write_manifest',
]

# Bumped when the same key would name a different graph, so older artifacts are rebuilt, not
# loaded: 2 = fp16/bf16 eager and torch-compile programs put every convolution in the low
# dtype (issue 17; 1 put only the encoder there).
FORMAT: Final = 2


def weights_sha256(model: nn.Module) -> str:
    """SHA-256 of a model's state dict (names, dtypes, shapes, values), prefixed ``weights:``.

    Keys models that did not come from a checkpoint file.
    """
    return 'weights:' + state_sha256(model.state_dict())


def artifact_key(
    *,
    backend: str,
    checkpoint_sha256: str,
    batch: int,
    height: int,
    width: int,
    dynamic: bool,
    max_side: int,
    input_size: tuple[int, int] | None,
    bgr: bool,
    precision: str,
    device: torch.device,
    calibration: Mapping[str, Any] | None = None,
    confidence: bool = False,
) -> dict[str, Any]:
    """The key of an artifact: equal keys mean the file can be loaded and used as it is.

    Args:
        backend: ``tensorrt``, ``onnxruntime``, ``torch-compile`` or ``eager``.
        checkpoint_sha256: :func:`file_sha256` of the checkpoint (or :func:`weights_sha256`).
        batch: Frames per call.
        height: Frame height (the optimal one of a dynamic range).
        width: Frame width.
        dynamic: Dynamic H and W up to ``max_side``.
        max_side: Upper bound of the dynamic range (ignored when static).
        input_size: Fixed network input, or None.
        bgr: bgr8 frames.
        precision: Compute precision.
        device: The device the engine runs on (the backend's ``key_fields`` say what of it,
            and of the libraries, the artifact is tied to).
        calibration: What an int8 engine was calibrated on (images, frames, their hash);
            None where there is nothing to compare: an artifact is then loaded whatever its
            calibration (a node given no calibration images loads the exported INT8 engine).
        confidence: The graph has the confidence output. Only then is it in the key, so the
            key (and the file) of an engine without it are the ones it always had.
    """
    key: dict[str, Any] = {
        'format': FORMAT,
        'backend': backend,
        'checkpoint_sha256': checkpoint_sha256,
        'batch': batch,
        'height': height,
        'width': width,
        'dynamic': dynamic,
        'max_side': max_side if dynamic else None,
        'input_size': list(input_size) if input_size else None,
        'bgr': bgr,
        'precision': precision,
    }
    if calibration is not None:
        key['calibration'] = dict(calibration)
    if confidence:
        key['confidence'] = True
    key.update(BACKEND_TABLE[backend].key_fields(device))
    return key


def calibration_key(frames: torch.Tensor, images: str) -> dict[str, Any]:
    """The ``calibration`` of an int8 key: the folder, how many frames, a hash of them."""
    digest = hashlib.sha256(frames.contiguous().numpy().tobytes()).hexdigest()[:16]
    return {'images': images, 'frames': int(frames.shape[0]), 'sha256': digest}


def artifact_path(directory: str | Path, key: Mapping[str, Any]) -> Path:
    """Where the artifact with this key lives: readable prefix plus a hash of the key."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    shape = f'b{key["batch"]}-{key["height"]}x{key["width"]}' + ('-dyn' if key['dynamic'] else '')
    shape += '-conf' if key.get('confidence') else ''
    suffix = BACKEND_TABLE[key['backend']].SUFFIX
    name = f'{key["backend"]}-{shape}-{key["precision"]}-{digest}{suffix}'
    return Path(directory) / name


def write_manifest(artifact: Path, key: Mapping[str, Any], **extra: Any) -> Path:
    """Write ``<artifact>.json`` (atomically): the key plus build details."""
    manifest = {
        'artifact': artifact.name,
        'key': dict(key),
        'segnode': __version__,
        'created': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        **extra,
    }
    path = artifact.with_suffix('.json')
    text = json.dumps(manifest, indent=2, sort_keys=True, default=str) + '\n'

    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding='utf-8')

    atomic_write(path, write)
    return path


def read_manifest(path: Path) -> dict[str, Any]:
    """Read a manifest; an unreadable one is an ``EngineBuildError``."""
    try:
        data = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, ValueError) as err:
        raise EngineBuildError(f'cannot read engine manifest {path}: {err}') from err
    if not isinstance(data, dict) or not isinstance(data.get('key'), dict):
        raise EngineBuildError(f'{path} is not a segnode engine manifest')
    return data


def differences(expected: Mapping[str, Any], found: Mapping[str, Any]) -> list[str]:
    """``'field: artifact X, wanted Y'`` for every field whose values differ.

    ``calibration`` absent from ``expected`` (no calibration frames to compare) matches any.
    """
    fields = sorted((set(expected) | set(found)) - ({'calibration'} - set(expected)))
    return [
        f'{name}: artifact {found.get(name)!r}, wanted {expected.get(name)!r}'
        for name in fields
        if expected.get(name) != found.get(name)
    ]


def find_artifact(directory: str | Path, key: Mapping[str, Any]) -> Path | None:
    """The artifact in ``directory`` with exactly ``key``; None when there is none at all.

    Raises:
        EngineBuildError: Artifacts of this backend exist but none matches; the message names
            the nearest one and every field that differs.
    """
    path = artifact_path(directory, key)
    manifest = path.with_suffix('.json')
    if path.is_file() and manifest.is_file():
        found = read_manifest(manifest)['key']
        if not differences(key, found):
            return path
    nearest: tuple[int, Path, list[str]] | None = None
    for candidate in sorted(Path(directory).glob('*.json')):
        try:
            found = read_manifest(candidate)['key']
        except EngineBuildError:
            continue
        if found.get('backend') != key['backend']:
            continue
        diff = differences(key, found)
        if nearest is None or len(diff) < nearest[0]:
            nearest = (len(diff), candidate, diff)
    if nearest is None:
        return None
    _, candidate, diff = nearest
    if not diff and candidate.with_suffix(BACKEND_TABLE[key['backend']].SUFFIX).is_file():
        return candidate.with_suffix(BACKEND_TABLE[key['backend']].SUFFIX)  # any calibration
    if not diff:  # the manifest matches but the artifact beside it is gone
        raise EngineBuildError(f'{candidate} has no artifact {candidate.with_suffix("").name}*')
    raise EngineBuildError(
        f'refusing {key["backend"]} artifact '
        f'{candidate.with_suffix(BACKEND_TABLE[key["backend"]].SUFFIX)}: '
        + '; '.join(diff)
        + ' (rebuild it with segnode export, or set engine.build_if_missing)'
    )
