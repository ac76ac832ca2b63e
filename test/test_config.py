"""The one YAML reader (one-line errors, duplicate keys refused), configs from it, devices."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from segnode.config import config_from_dict, read_yaml, resolve_device
from segnode.errors import ConfigError, EngineUnavailable


@dataclass(frozen=True)
class _Small:
    rate: float = 1.0
    name: str = 'a'


def test_read_yaml_parses_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / 'a.yaml'
    path.write_text('rate: 2.5\nname: b\n')
    assert read_yaml(path) == {'rate': 2.5, 'name': 'b'}
    assert config_from_dict(_Small, read_yaml(path)) == _Small(2.5, 'b')


@pytest.mark.parametrize(
    ('content', 'message'),
    [
        (b'rate: 1\nrate: 2\n', "duplicate key 'rate'"),
        (b'rate: [1, 2\n', 'is not valid YAML'),
        (b'\xff\xfe\x00binary', 'is not UTF-8 text'),
    ],
)
def test_read_yaml_errors_are_one_line(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / 'bad.yaml'
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message) as info:
        read_yaml(path, 'params file')
    assert '\n' not in str(info.value) and str(path) in str(info.value)


def test_read_yaml_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match='cannot read params file .*missing.yaml'):
        read_yaml(tmp_path / 'missing.yaml', 'params file')
    with pytest.raises(ConfigError, match='cannot read'):
        read_yaml(tmp_path, 'params file')


def test_unknown_keys_are_named(tmp_path: Path) -> None:
    path = tmp_path / 'c.yaml'
    path.write_text('speed: 3\n')
    with pytest.raises(ConfigError, match=r"unknown key 'speed'; allowed keys: name, rate"):
        config_from_dict(_Small, read_yaml(path))


@pytest.mark.parametrize('name', ['banana', 'cuda:x', 'cpu:0', 'gpu'])
def test_device_names_are_checked(name: str) -> None:
    with pytest.raises(EngineUnavailable, match='device must be auto, cpu, cuda or cuda:N'):
        resolve_device(name)


def test_cpu_and_auto_resolve_without_cuda() -> None:
    assert resolve_device('cpu') == torch.device('cpu')
    if not torch.cuda.is_available():
        assert resolve_device('auto') == torch.device('cpu')
