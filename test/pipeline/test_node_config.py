"""NodeConfig: the shipped params file, ROS flat names, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from segnode.config import EngineConfig
from segnode.errors import ConfigError
from segnode.pipeline.config import (
    CameraConfig,
    load_node_config,
    node_config_from_dict,
    node_config_from_flat,
    node_config_to_flat,
    NodeConfig,
)

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / 'params.yaml'
    path.write_text('/**:\n  ros__parameters:\n' + body)
    return path


SHIPPED = sorted(p.name for p in (REPO / 'config').glob('*.yaml'))


def test_the_shipped_params_files_are_found() -> None:
    assert {'segnode.yaml', 'multi_camera.yaml'} <= set(SHIPPED)


@pytest.mark.parametrize('name', SHIPPED)
def test_shipped_params_files_load(name: str) -> None:
    config = load_node_config(REPO / 'config' / name)
    assert config.camera_names
    assert [c.name for c in config.cameras] == list(config.camera_names)


def test_nested_yaml(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '    camera_names: [front, rear]\n'
        '    cameras:\n'
        '      front: {topic: /front/image, transport: compressed}\n'
        '    engine: {backend: eager, device: cpu, input_size: [256, 512]}\n'
        '    model: {num_classes: 11}\n'
        '    max_age_ms: 200\n',
    )
    config = load_node_config(path)
    front, rear = config.cameras
    assert front == CameraConfig('front', '/front/image', 'compressed')
    assert front.subscribed_topic == '/front/image/compressed'
    assert rear.topic == 'rear/image_raw' and rear.transport == 'raw'
    assert config.engine == EngineConfig(backend='eager', device='cpu', input_size=(256, 512))
    assert config.max_age_ms == 200.0
    assert config.model.num_classes == 11


def test_dotted_keys_are_the_nested_ones_as_ros_reads_them(tmp_path: Path) -> None:
    dotted = write(
        tmp_path,
        '    camera_names: [front]\n'
        '    cameras.front.topic: /front/image\n'
        '    engine.backend: eager\n'
        '    engine:\n'
        '      device: cpu\n',
    )
    config = load_node_config(dotted)
    assert config.camera('front').topic == '/front/image'
    assert (config.engine.backend, config.engine.device) == ('eager', 'cpu')


def test_flat_round_trip() -> None:
    config = node_config_from_dict(
        {
            'camera_names': ['left', 'right'],
            'cameras': {'left': {'topic': 'l/img', 'qos': 'DEFAULT', 'size': [720, 1280]}},
            'engine': {'precision': 'fp16'},
            'publish_color': 'never',
        }
    )
    flat = node_config_to_flat(config)
    assert flat['cameras.left.topic'] == 'l/img'
    assert flat['cameras.right.transport'] == 'raw'
    assert flat['engine.input_size'] == [] == flat['cameras.right.size']  # ROS for unset
    assert flat['cameras.left.size'] == [720, 1280]
    assert config.camera('left').size == (720, 1280)
    assert all(not isinstance(v, (tuple, dict)) for v in flat.values())
    assert node_config_from_flat(flat) == config


def test_defaults_flat_round_trip() -> None:
    assert node_config_from_flat(node_config_to_flat(NodeConfig())) == NodeConfig()


@pytest.mark.parametrize(
    ('body', 'match'),
    [
        ('    colour: auto\n', r"unknown key 'colour'"),
        ('    engine: {backend: tensorrtt}\n', r'engine\.backend must be one of'),
        ('    engine: {speed: 1}\n', r"unknown key 'engine\.speed'"),
        ('    model: {pth: x}\n', r"unknown key 'model\.pth'"),
        ('    input_qos: BEST\n', r'input_qos must be one of SENSOR_DATA'),
        ('    input_depth: 0\n', r'input_depth must be in 1..1000'),
        ('    max_age_ms: fast\n', r'max_age_ms must be of type'),
        ('    camera_names: [a, a]\n', r"lists 'a' more than once"),
        ('    camera_names: []\n', r'camera_names: \[\] cannot be read by ROS 2'),
        ('    engine: {input_size: []}\n', r'engine\.input_size: \[\] cannot be read by ROS 2'),
        ('    engine:\n      backend:\n', r'engine\.backend has no value'),
        ('    engine.backend: eager\n    engine: {backend: onnx}\n', r'backend is given twice'),
        ('    camera_names: [front]\n    cameras: {rear: {topic: x}}\n', r'cameras\.rear .*'),
        ('    cameras: {camera: {transport: h264}}\n', r'transport must be raw or compressed'),
        ('    cameras: {camera: {topc: x}}\n', r"unknown key 'cameras\.camera\.topc'"),
        ('    camera_names: [front-left]\n', r'must start with a letter'),
        ('    model: {palette: [1, 2]}\n', r'flat list of r, g, b'),
        ('    publish_color: sometimes\n', r'publish_color must be one of'),
        ('    cameras: {camera: {size: [480]}}\n', r'cameras\.camera\.size must be \[height'),
    ],
)
def test_errors_name_the_key(tmp_path: Path, body: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_node_config(write(tmp_path, body))


def test_file_shape_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match='cannot read params file'):
        load_node_config(tmp_path / 'missing.yaml')
    bad = tmp_path / 'bad.yaml'
    bad.write_text('segnode: {parameters: {}}\n')
    with pytest.raises(ConfigError, match='exactly one key, ros__parameters'):
        load_node_config(bad)
    bad.write_text('a: 1\nb: 2\n')
    with pytest.raises(ConfigError, match='one node entry'):
        load_node_config(bad)
    bad.write_text('/**: {ros__parameters: [\n')
    with pytest.raises(ConfigError, match='not valid YAML'):
        load_node_config(bad)


@pytest.mark.parametrize(
    ('body', 'message'),
    [
        ('    3: 1\n', 'keys must be names, got 3'),
        ('    null: 1\n', 'keys must be names, got None'),
        ('    yes: 1\n', 'keys must be names, got True'),
        ('    3: 1\n    autostart: true\n', 'keys must be names'),
        (
            '    camera_names: [front]\n    cameras: {front: abc}\n',
            'cameras.front must be a mapping',
        ),
        ('    max_age_ms: .nan\n', 'max_age_ms must be a finite number'),
        ('    diagnostics_period_s: .inf\n', 'diagnostics_period_s must be a finite number'),
        ('    engine: {min_agreement: .nan}\n', 'engine.min_agreement must be a finite number'),
        ('    engine: {threads: 100000000}\n', 'engine.threads must be in 0..1024'),
        ('    autostart: true\n    autostart: false\n', "duplicate key 'autostart'"),
        ('    a: &x [front]\n    camera_names: *x\n', r'aliases \(\*name\) are not allowed'),
    ],
)
def test_hostile_params_files_fail_in_one_line(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_node_config(write(tmp_path, body))
    assert '\n' not in str(info.value) and len(str(info.value)) < 400


def test_billion_laughs_are_refused_at_once(tmp_path: Path) -> None:
    lines = ['    l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]']
    lines += [f'    l{i}: &l{i} [{", ".join([f"*l{i - 1}"] * 9)}]' for i in range(1, 9)]
    lines.append('    camera_names: *l8')
    with pytest.raises(ConfigError, match='aliases'):
        load_node_config(write(tmp_path, '\n'.join(lines) + '\n'))


def test_binary_deep_and_huge_files_are_one_line_errors(tmp_path: Path) -> None:
    path = tmp_path / 'params.yaml'
    path.write_bytes(b'\x89PNG\r\n\x1a\n\x00\x00\xff\xfe')
    with pytest.raises(ConfigError, match='not UTF-8'):
        load_node_config(path)
    path.write_text('/**:\n  ros__parameters:\n    x: ' + '[' * 1000 + ']' * 1000 + '\n')
    with pytest.raises(ConfigError, match='nested too deeply'):
        load_node_config(path)
    names = ', '.join(f'c{i}' for i in range(30_000))
    with pytest.raises(ConfigError, match='30000 cameras, at most 64'):
        load_node_config(write(tmp_path, f'    camera_names: [{names}]\n'))


def test_duplicate_camera_names_are_found_in_linear_time() -> None:
    names = [f'c{i}' for i in range(60)] + ['c7']
    with pytest.raises(ConfigError, match="camera_names lists 'c7' more than once"):
        NodeConfig(camera_names=tuple(names))
