"""What a segnode checkpoint may hold: the metadata schema, tensor values and shapes.

Everything here runs before a model is built, so a hostile or damaged file costs a fraction
of a second and one line naming the field: the metadata is checked field by field against
:data:`META_FIELDS` (types, lengths, counts, nesting), every weight must be finite and at most
:data:`MAX_ABS_WEIGHT` in magnitude, and every tensor's shape is compared with the shapes of
the architecture ``meta.model`` describes, built on torch's ``meta`` device (no memory).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
import re
from typing import Any

import torch
from torch import Tensor

from segnode.config import config_from_dict, IGNORE_ID, MAX_TEXT, ModelConfig
from segnode.errors import CheckpointError, clip, ConfigError, one_line
from segnode.model.mfaranet import MFARANet

__all__ = [
    'MAX_ABS_WEIGHT',
    'MAX_CLASS_NAME',
    'META_FIELDS',
    'check_meta',
    'check_shapes',
    'check_tensors',
    'current_provenance',
    'expected_state',
]

# The largest weight magnitude accepted. A trained MFARANet's largest is below 100 (a
# BatchNorm running variance); 1e38 is damage or an attack, and would overflow fp16 engines.
MAX_ABS_WEIGHT = 1e6
# The longest class name (names label plots, reports and ROS label info).
MAX_CLASS_NAME = 64
# Bounds of the free-form plain data (recipe, metrics, equalizer provenance).
MAX_NESTING = 8  # mapping and list levels
MAX_ITEMS = 10_000  # values in one field, all levels together
MAX_KEY = 256  # characters of one mapping key
_FLOATING = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
_SHA256 = re.compile(r'^[0-9a-f]{64}$')
_DTYPES = ('float32', 'float16')
# Equalizer provenance as files written before the rename store it (old -> current name).
# Measuring the Scale Equalizer constants was called "calibration" until the word came to
# mean INT8 quantisation only. Files keep what they hold (the bundled model among them, never
# rewritten); reading maps the old names here, the only place they appear; writing uses the
# current ones. Keys of the provenance first, then values of its 'state'.
_OLD_PROVENANCE_KEYS = {'calibrated_at': 'measured_at'}
_OLD_EQUALIZER_STATES = {'calibrated': 'measured', 'uncalibrated': 'unmeasured'}


def _fail(where: str, field: str, reason: str) -> CheckpointError:
    return CheckpointError(f'{where}: meta.{field} {reason}')


def _text(value: Any, where: str, field: str, limit: int = MAX_TEXT) -> None:
    if not isinstance(value, str):
        raise _fail(where, field, f'must be a string, got {type(value).__name__}')
    if len(value) > limit:
        raise _fail(where, field, f'is {len(value)} characters long, at most {limit}')


def _plain(value: Any, where: str, field: str) -> None:
    """``value`` is plain data (mappings with string keys, lists, scalars) within the bounds."""
    count = 0

    def walk(item: Any, path: str, depth: int) -> None:
        nonlocal count
        count += 1
        if count > MAX_ITEMS:
            raise _fail(where, field, f'holds more than {MAX_ITEMS} values')
        if depth > MAX_NESTING:
            raise _fail(where, path, f'is nested more than {MAX_NESTING} levels deep')
        if isinstance(item, Mapping):
            for key, sub in item.items():
                if not isinstance(key, str) or len(key) > MAX_KEY:
                    raise _fail(
                        where, path, f'has a key that is not a name: {clip(repr(key), 40)}'
                    )
                walk(sub, f'{path}.{clip(key, 40)}', depth + 1)
        elif isinstance(item, (list, tuple)):
            for sub in item:
                walk(sub, f'{path}[]', depth + 1)
        elif isinstance(item, str):
            _text(item, where, path)
        elif isinstance(item, int) and not isinstance(item, bool) and abs(item) >= 2**63:
            raise _fail(where, path, f'is an integer of {item.bit_length()} bits, at most 64')
        elif item is not None and not isinstance(item, (bool, int, float)):
            raise _fail(where, path, f'holds a {type(item).__name__}, not plain data')

    walk(value, field, 0)


def _mapping(value: Any, where: str, field: str) -> None:
    if not isinstance(value, Mapping):
        raise _fail(where, field, f'must be a mapping, got {type(value).__name__}')
    _plain(value, where, field)


def _classes(value: Any, where: str, field: str) -> None:
    if not isinstance(value, Mapping):
        raise _fail(where, field, 'must be a mapping with names and palette')
    unknown = sorted(str(k) for k in value if k not in ('names', 'palette'))
    if unknown:
        raise _fail(where, field, f'has an unknown key {clip(unknown[0], 40)!r}')
    names = value.get('names', [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise _fail(where, f'{field}.names', 'must be a list of strings')
    if len(names) > IGNORE_ID:
        raise _fail(where, f'{field}.names', f'lists {len(names)} names, at most {IGNORE_ID}')
    for i, name in enumerate(names):
        if not 1 <= len(name) <= MAX_CLASS_NAME or not name.isprintable():
            raise _fail(
                where,
                f'{field}.names[{i}]',
                f'must be 1..{MAX_CLASS_NAME} printable characters, got {clip(repr(name), 40)}',
            )
    palette = value.get('palette', [])
    if not isinstance(palette, list) or not all(
        isinstance(c, (list, tuple))
        and len(c) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in c)
        for c in palette
    ):
        raise _fail(where, f'{field}.palette', 'must be a list of [r, g, b] integers in 0..255')
    if palette and len(palette) != len(names):
        raise _fail(where, field, f'has {len(names)} names but {len(palette)} palette colours')


def _model(value: Any, where: str, field: str) -> None:
    if not isinstance(value, Mapping):
        raise _fail(where, field, 'must be a mapping of model options')


def _dtype(value: Any, where: str, field: str) -> None:
    if value not in _DTYPES:
        raise _fail(where, field, f'must be one of {", ".join(_DTYPES)}, got {clip(value, 20)!r}')


def _bool(value: Any, where: str, field: str) -> None:
    if not isinstance(value, bool):
        raise _fail(where, field, f'must be true or false, got {type(value).__name__}')


def _sha(value: Any, where: str, field: str) -> None:
    if not isinstance(value, str) or not _SHA256.match(value):
        raise _fail(where, field, 'must be 64 lowercase hexadecimal digits (a SHA-256)')


def _short_text(value: Any, where: str, field: str) -> None:
    _text(value, where, field, 256)


Check = Callable[[Any, str, str], None]
# Every field a version 1 checkpoint's metadata may hold, with its check.
META_FIELDS: dict[str, Check] = {
    'model': _model,
    'classes': _classes,
    'dataset': _short_text,
    'equalizers': _mapping,
    'recipe': _mapping,
    'metrics': _mapping,
    'source': _text,
    'git_revision': _short_text,
    'created': _short_text,
    'folded': _bool,
    'dtype': _dtype,
    'weights_sha256': _sha,
}
_REQUIRED = ('model', 'classes')


def current_provenance(provenance: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of stored equalizer provenance with the names of today (see above)."""
    current = {_OLD_PROVENANCE_KEYS.get(k, k): v for k, v in provenance.items()}
    state = current.get('state')
    if isinstance(state, str):
        current['state'] = _OLD_EQUALIZER_STATES.get(state, state)
    return current


def check_meta(meta: Mapping[str, Any], where: str) -> ModelConfig:
    """Check every metadata field; returns the architecture ``meta.model`` describes.

    Raises:
        CheckpointError: One line naming the first field that is missing, unknown, of the
            wrong type or out of bounds.
    """
    unknown = sorted(clip(repr(k), 40) for k in meta if k not in META_FIELDS)
    if unknown:
        raise CheckpointError(
            f'{where}: meta has an unknown field {unknown[0]} (a version 1 checkpoint holds '
            f'{", ".join(META_FIELDS)})'
        )
    for field in _REQUIRED:
        if field not in meta:
            raise _fail(where, field, 'is missing')
    for field, check in META_FIELDS.items():
        if field in meta:
            check(meta[field], where, field)
    try:
        config = config_from_dict(ModelConfig, meta['model'], 'meta.model.')
    except ConfigError as err:
        reason = one_line(err)
        reason = f'meta.{reason}' if reason.startswith('model.') else reason
        raise CheckpointError(f'{where}: {reason}') from None
    names = meta['classes'].get('names', [])
    if len(names) != config.num_classes:
        raise _fail(
            where, 'classes.names', f'lists {len(names)} names for {config.num_classes} classes'
        )
    return config


def check_tensors(state: Mapping[Any, Any], where: str) -> None:
    """Every key a name; every value a finite, bounded float tensor or an integer tensor."""
    for name, value in state.items():
        if not isinstance(name, str):
            raise CheckpointError(
                f'{where}: state_dict key {clip(repr(name), 40)} is not a tensor name'
            )
        shown = clip(name)
        if not isinstance(value, Tensor):
            raise CheckpointError(f'{where}: {shown} is a {type(value).__name__}, not a tensor')
        if value.is_floating_point():
            if value.dtype not in _FLOATING:
                raise CheckpointError(f'{where}: {shown} has unsupported dtype {value.dtype}')
            if not bool(torch.isfinite(value).all()):
                raise CheckpointError(f'{where}: {shown} holds NaN or infinite values')
            if value.numel() and float(value.abs().max()) > MAX_ABS_WEIGHT:
                raise CheckpointError(
                    f'{where}: {shown} holds values of magnitude {float(value.abs().max()):.3g}, '
                    f'more than {MAX_ABS_WEIGHT:g} (damaged or altered weights)'
                )
        elif value.is_complex() or value.dtype == torch.bool:
            raise CheckpointError(f'{where}: {shown} has unsupported dtype {value.dtype}')


def expected_state(config: ModelConfig) -> dict[str, Tensor]:
    """The state dict ``config``'s MFARANet has, on the meta device (shapes only, no memory)."""
    with torch.device('meta'):
        return MFARANet(config).state_dict()


def check_shapes(expected: Mapping[str, Tensor], state: Mapping[str, Tensor], where: str) -> None:
    """``state`` has exactly ``expected``'s keys, kinds (float or integer) and shapes.

    Raises:
        CheckpointError: The first difference, named.
    """
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if any('equalizers.' in k for k in missing) and not any('equalizers.' in k for k in state):
        raise CheckpointError(
            f'{where}: the model uses scale equalizers but the checkpoint has no equalizer '
            'constants (refusing to treat them as identity; measure them with segnode equalize or '
            'convert instead)'
        )
    if missing or unexpected:
        raise CheckpointError(
            f'{where}: keys do not match the model: missing {[clip(k) for k in missing[:5]]}, '
            f'unexpected {[clip(k) for k in unexpected[:5]]}'
        )
    for key, value in state.items():
        if value.is_floating_point() != expected[key].is_floating_point():
            raise CheckpointError(
                f'{where}: {key} is {value.dtype} in the checkpoint but {expected[key].dtype} in '
                'the model'
            )
        if value.shape != expected[key].shape:
            raise CheckpointError(
                f'{where}: {key} has shape {tuple(value.shape)} in the checkpoint but '
                f'{tuple(expected[key].shape)} in the model (class count or width mismatch?)'
            )
