"""Hostile and careless files for tests: damaged checkpoints and params files (issue 28).

Each case is a name, a function that damages a fresh copy of a valid file, and a fragment of
the one-line refusal segnode must give. Import it from any test as ``import hostile``
(pytest's ``prepend`` import mode puts ``test/`` on ``sys.path``). Every file is small: a
width-16, 3-class fp16 checkpoint (the backbone dominates: about 22 MB) and params files of a few
MB at most.
"""

from __future__ import annotations

from collections.abc import Callable
import copy
from pathlib import Path
from typing import Any

import torch

from segnode.config import MAX_YAML_BYTES
from segnode.model import build_mfaranet
from segnode.model.checkpoint import save_checkpoint, state_sha256

Raw = dict[str, Any]
MEGA = 2**20


def valid_checkpoint(path: Path, num_classes: int = 3, width: int = 16) -> Raw:
    """Write a valid segnode checkpoint (random weights) to ``path``; returns its raw dict."""
    torch.manual_seed(0)
    model = build_mfaranet(num_classes=num_classes, width=width).eval()
    names = [f'c{i}' for i in range(num_classes)]
    palette = [(i, i, i) for i in range(num_classes)]
    save_checkpoint(
        model, path, class_names=names, palette=palette, dataset='synthetic', half=True
    )
    raw: Raw = torch.load(path, weights_only=True)
    return raw


def write_checkpoint(raw: Raw, path: Path, *, rehash: bool = True) -> Path:
    """``torch.save`` ``raw``; with ``rehash`` its recorded weights hash is made to match."""
    if rehash and 'weights_sha256' in raw.get('meta', {}):
        raw['meta']['weights_sha256'] = state_sha256(raw['state_dict'])
    torch.save(raw, path)
    return path


def _set(*keys: str, value: Any) -> Callable[[Raw], None]:
    def change(raw: Raw) -> None:
        node = raw['meta']
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return change


def _weight(value: float) -> Callable[[Raw], None]:
    def change(raw: Raw) -> None:
        name = 'score_heads.0.weight'
        weight = raw['state_dict'][name].float()  # fp16 cannot hold 1e38
        weight.view(-1)[0] = value
        raw['state_dict'][name] = weight

    return change


def _no_hash(raw: Raw) -> None:
    raw['meta'].pop('weights_sha256')
    raw['state_dict']['score_heads.0.weight'].view(-1)[0] += 1.0  # tampered, then hidden


def _names(count: int, length: int) -> Callable[[Raw], None]:
    def change(raw: Raw) -> None:
        raw['meta']['classes']['names'] = [chr(97 + i % 26) * length for i in range(count)]
        raw['meta']['classes']['palette'] = [[0, 0, 0]] * count

    return change


def _nested(depth: int) -> Callable[[Raw], None]:
    def change(raw: Raw) -> None:
        value: Any = 1
        for _ in range(depth):
            value = {'x': value}
        raw['meta']['recipe'] = value

    return change


# (name, damage, fragment of the refusal)
CHECKPOINTS: list[tuple[str, Callable[[Raw], None], str]] = [
    ('no weights hash', _no_hash, 'has no meta.weights_sha256'),
    ('width 100000', _set('model', 'width', value=100_000), 'meta.model.width must be'),
    ('width 4096', _set('model', 'width', value=4096), 'meta.model.width must be'),
    ('width 1024, weights of 16', _set('model', 'width', value=1024), 'has shape'),
    ('num_classes 2**70', _set('model', 'num_classes', value=2**70), 'meta.model.num_classes'),
    ('unknown model option', _set('model', 'depth', value=3), "unknown key 'meta.model.depth'"),
    ('metrics a list', _set('metrics', value=[1, 2]), 'meta.metrics must be a mapping'),
    ('recipe a string', _set('recipe', value='fast'), 'meta.recipe must be a mapping'),
    ('source a number', _set('source', value=3), 'meta.source must be a string'),
    ('created 1 MB', _set('created', value='x' * MEGA), 'meta.created is 1048576 characters'),
    ('folded a string', _set('folded', value='no'), 'meta.folded must be true or false'),
    ('dtype unknown', _set('dtype', value='int4'), 'meta.dtype must be one of'),
    ('hash not hex', _set('weights_sha256', value='zz'), 'meta.weights_sha256 must be'),
    ('unknown field', _set('payload', value='x' * MEGA), 'meta has an unknown field'),
    ('class names 1 MB', _names(3, MEGA), 'meta.classes.names[0] must be 1..64 printable'),
    ('class name control', _set('classes', 'names', value=['a\x1b[2J', 'b', 'c']), 'printable'),
    ('class names 3000', _names(3000, 1), 'lists 3000 names, at most 255'),
    ('class count mismatch', _names(2, 1), 'lists 2 names for 3 classes'),
    ('palette 2 values', _set('classes', 'palette', value=[[1, 2]] * 3), 'palette must be'),
    ('palette 999', _set('classes', 'palette', value=[[999, 0, 0]] * 3), 'palette must be'),
    ('recipe nested 50 deep', _nested(50), 'nested more than 8 levels'),
    ('metrics 20000 values', _set('metrics', value={'v': [0] * 20_000}), 'more than 10000'),
    ('metrics integer 2**100', _set('metrics', value={'n': 2**100}), 'at most 64'),
    ('weight 1e38', _weight(1e38), 'more than 1e+06'),
    ('weight inf', _weight(float('inf')), 'holds NaN or infinite values'),
    ('weight nan', _weight(float('nan')), 'holds NaN or infinite values'),
]


def damaged_checkpoint(base: Raw, damage: Callable[[Raw], None], path: Path) -> Path:
    """A copy of ``base`` damaged by ``damage``, written to ``path``.

    The recorded weights hash is made to match the damaged weights (as an attacker would),
    unless ``damage`` changed or removed it.
    """
    raw = copy.deepcopy(base)
    recorded = raw['meta'].get('weights_sha256')
    damage(raw)
    return write_checkpoint(raw, path, rehash=raw['meta'].get('weights_sha256') == recorded)


def raw_pickle(path: Path) -> Path:
    """A plain ``pickle`` (protocol 4) file, not a torch.save one."""
    import pickle

    path.write_bytes(pickle.dumps({'format': 'segnode-checkpoint', 'version': 1}, protocol=4))
    return path


def _params(body: str) -> str:
    return '/**:\n  ros__parameters:\n' + body


def PARAMS_OVER_LIMIT() -> str:  # noqa: N802 - reads as the constant it stands for
    """A valid params file one byte over ``MAX_YAML_BYTES`` (a long comment)."""
    text = _params('    input_depth: 1\n# ')
    return text + 'x' * (MAX_YAML_BYTES + 1 - len(text))


# (name, file content, fragment of the refusal)
PARAMS: list[tuple[str, Callable[[], str | bytes], str]] = [
    ('unhashable key', lambda: _params('    ? [a, b]\n    : 1\n'), 'cannot be a key'),
    ('mapping key', lambda: _params('    ? {a: 1}\n    : 1\n'), 'cannot be a key'),
    ('over the size limit', lambda: PARAMS_OVER_LIMIT(), 'is larger than 4 MiB'),
    ('input_depth 2**70', lambda: _params(f'    input_depth: {2**70}\n'), 'input_depth must'),
    ('output_depth 0', lambda: _params('    output_depth: 0\n'), 'output_depth must be in'),
    ('period a year', lambda: _params('    warn_period_s: 31536000.0\n'), 'warn_period_s'),
    (
        'camera size 2**40',
        lambda: _params(f'    cameras:\n      camera:\n        size: [{2**40}, 4]\n'),
        'size must be [height, width] in 1..65535',
    ),
    (
        'camera size above max_frame_side',
        lambda: _params('    cameras:\n      camera:\n        size: [5000, 5000]\n'),
        'larger than max_frame_side 4096',
    ),
    (
        '65 cameras',
        lambda: _params(f'    camera_names: [{", ".join(f"c{i}" for i in range(65))}]\n'),
        'at most 64',
    ),
    ('camera name 1 MB', lambda: _params(f'    camera_names: [c{"x" * MEGA}]\n'), 'a text of'),
    ('key 1 MB', lambda: _params(f'    {"k" * MEGA}: 1\n'), 'is not valid YAML'),
    (
        '200000 keys',
        lambda: _params(''.join(f'    k{i}: 1\n' for i in range(200_000))),
        'holds more than 50000 values',
    ),
    ('key 1000 long', lambda: _params(f'    {"k" * 1000}: 1\n'), 'is too long'),
    ('unknown key 250 long', lambda: _params(f'    {"k" * 250}: 1\n'), "unknown key 'kkk"),
    ('value 1 MB', lambda: _params(f'    publish_color: {"x" * MEGA}\n'), 'publish_color'),
    ('duplicate key 1 MB', lambda: _params(f'    {"k" * 200}: 1\n' * 2), 'duplicate key'),
    ('model a number', lambda: _params('    model: 3\n'), 'model: expected a mapping'),
    ('engine a list', lambda: _params('    engine: [1, 2]\n'), 'engine: expected a mapping'),
    (
        'artifact_dir 100 KB',
        lambda: _params(f'    engine:\n      artifact_dir: {"d" * 100_000}\n'),
        'engine.artifact_dir holds a text of more than 4096 characters',
    ),
]
