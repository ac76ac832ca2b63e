"""Artifact keys, manifests and lookups."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from segnode.engine.artifacts import (
    artifact_key,
    artifact_path,
    differences,
    find_artifact,
    weights_sha256,
    write_manifest,
)
from segnode.errors import EngineBuildError
from segnode.model import MFARANet


def _key(**overrides: object) -> dict[str, object]:
    values: dict[str, object] = {
        'backend': 'torch-compile',
        'checkpoint_sha256': 'abc',
        'batch': 1,
        'height': 512,
        'width': 1024,
        'dynamic': False,
        'max_side': 2048,
        'input_size': None,
        'bgr': False,
        'precision': 'fp32',
        'device': torch.device('cpu'),
        **overrides,
    }
    return artifact_key(**values)  # type: ignore[arg-type]


def test_key_holds_shape_precision_and_versions() -> None:
    key = _key()
    assert key['torch'] == torch.__version__ and key['device_type'] == 'cpu'
    assert key['max_side'] is None  # static
    portable = _key(backend='onnxruntime')
    assert 'torch' not in portable and portable['opset'] == 17


def test_path_is_readable_and_changes_with_the_key(tmp_path: Path) -> None:
    path = artifact_path(tmp_path, _key())
    assert path.name.startswith('torch-compile-b1-512x1024-fp32-') and path.suffix == '.pt2'
    assert artifact_path(tmp_path, _key(precision='bf16')) != path


def test_lookup_finds_the_exact_match_and_refuses_a_near_one(tmp_path: Path) -> None:
    key = _key()
    path = artifact_path(tmp_path, key)
    path.write_bytes(b'x')
    write_manifest(path, key, parity={'passed': True})
    assert find_artifact(tmp_path, key) == path
    assert find_artifact(tmp_path, _key(backend='eager')) is None  # no eager artifacts at all
    other = _key(height=720, checkpoint_sha256='def')
    with pytest.raises(EngineBuildError) as info:
        find_artifact(tmp_path, other)
    message = str(info.value)
    assert "checkpoint_sha256: artifact 'abc', wanted 'def'" in message
    assert 'height: artifact 512, wanted 720' in message and 'width' not in message


def test_differences_lists_only_changed_fields() -> None:
    assert differences({'a': 1, 'b': 2}, {'a': 1, 'b': 3, 'c': 4}) == [
        'b: artifact 3, wanted 2',
        'c: artifact 4, wanted None',
    ]


def test_hashes(tmp_path: Path, model: MFARANet) -> None:
    digest = weights_sha256(model)
    assert digest.startswith('weights:') and digest == weights_sha256(model)
    changed = MFARANet(model.config)
    assert weights_sha256(changed) != digest
