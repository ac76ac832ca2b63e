"""The node's configuration: one params YAML read by the ROS 2 node and by the core.

``config/segnode.yaml`` has the ROS shape (``/**:`` -> ``ros__parameters:``; nested maps become
dotted parameter names such as ``engine.backend``). The core reads it with PyYAML through
:func:`load_node_config`; the ROS adapter declares one parameter per entry of
:func:`node_config_to_flat` and turns the values back with :func:`node_config_from_flat`, so
both paths validate the same way and an unknown or invalid key is an error naming the key.

ROS 2 parameters hold scalars and homogeneous arrays only, hence ``camera_names`` plus
``cameras.<name>.topic`` instead of a list of maps, a flat ``[r, g, b, r, g, b, ...]`` palette,
and ``[]`` for an unset ``engine.input_size``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
import math
from pathlib import Path
import re
from typing import Any

from segnode.config import (
    config_from_dict,
    config_to_dict,
    EngineConfig,
    IGNORE_ID,
    MAX_FRAME_SIDE,
    MIN_SIDE,
    read_yaml,
    short_repr,
)
from segnode.errors import clip, ConfigError

__all__ = [
    'COLOR_MODES',
    'QOS_PRESETS',
    'RANDOM_CHECKPOINT',
    'TRANSPORTS',
    'CameraConfig',
    'LabelModelConfig',
    'NodeConfig',
    'load_node_config',
    'load_node_params',
    'read_node_params',
    'node_config_from_dict',
    'node_config_from_flat',
    'node_config_to_flat',
]

RANDOM_CHECKPOINT = 'random'  # model.path (and --checkpoint) that asks for random weights
QOS_PRESETS = ('SENSOR_DATA', 'DEFAULT', 'SYSTEM_DEFAULT')
TRANSPORTS = ('raw', 'compressed')
COLOR_MODES = ('auto', 'always', 'never')
_NAME = re.compile(r'^[A-Za-z][A-Za-z0-9_]{0,63}$')
_MAX_SIDE = 65535  # the largest frame side a camera may declare (sensor_msgs/Image is uint32)
MAX_CAMERAS = 64  # more is a mistake (and each camera costs a subscription and an engine)
MAX_DEPTH = 1000  # the largest keep-last queue depth (the node keeps only the newest frame)
MAX_PERIOD_S = 86_400.0  # the longest diagnostics or warning period: a day
MAX_AGE_MS = 86_400_000.0  # the longest max_age_ms: a day


@dataclass(frozen=True)
class CameraConfig:
    """One camera input.

    Attributes:
        name: Camera name; output topics are ``~/<name>/labels`` and so on.
        topic: Image topic, relative to the node's namespace unless it starts with ``/``.
            For ``compressed`` transport the node subscribes to ``<topic>/compressed``.
        transport: ``raw`` (sensor_msgs/Image) or ``compressed`` (CompressedImage).
        qos: Subscription QoS preset of this camera; ``''`` uses the node's ``input_qos``.
        size: Frame size ``[height, width]`` when known: the engine is then built or loaded
            at configure (a missing one fails configure) instead of at the first frame.
    """

    name: str
    topic: str = ''
    transport: str = 'raw'
    qos: str = ''
    size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        """Validate the name, transport and QoS preset; default the topic."""
        if not _NAME.match(self.name):
            raise ConfigError(
                f'camera name {short_repr(self.name)} must start with a letter and contain '
                'only letters, digits and underscores (at most 64 characters)'
            )
        if not self.topic:
            object.__setattr__(self, 'topic', f'{self.name}/image_raw')
        if self.transport not in TRANSPORTS:
            raise ConfigError(
                f'cameras.{self.name}.transport must be raw or compressed, got {self.transport!r}'
            )
        if isinstance(self.size, list):
            object.__setattr__(self, 'size', tuple(self.size) or None)
        if self.size is not None and (
            len(self.size) != 2 or min(self.size) < 1 or max(self.size) > _MAX_SIDE
        ):
            raise ConfigError(
                f'cameras.{self.name}.size must be [height, width] in 1..{_MAX_SIDE} or [], '
                f'got {short_repr(list(self.size))}'
            )
        if self.qos and self.qos not in QOS_PRESETS:
            raise ConfigError(
                f'cameras.{self.name}.qos must be one of {", ".join(QOS_PRESETS)} or empty, '
                f'got {self.qos!r}'
            )

    @property
    def subscribed_topic(self) -> str:
        """The topic actually subscribed (``<topic>/compressed`` for compressed transport)."""
        return f'{self.topic}/compressed' if self.transport == 'compressed' else self.topic


@dataclass(frozen=True)
class LabelModelConfig:
    """The checkpoint and what its classes are called.

    Attributes:
        path: segnode checkpoint; ``''`` is the bundled default (CamVid, docs/model-card.md);
            ``random`` asks for random weights (timing only; never a silent fallback).
        num_classes: Classes the checkpoint must have (a mismatch fails to configure); 0
            accepts the checkpoint's. Random weights use it (CamVid's 11 when 0).
        class_names: Names of classes 0..K-1; empty takes them from the checkpoint.
        palette: Flat ``[r, g, b, ...]`` colours of classes 0..K-1; empty takes them from the
            checkpoint.
    """

    path: str = ''
    num_classes: int = 0
    class_names: tuple[str, ...] = ()
    palette: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        """Validate the class count and the palette layout."""
        if not 0 <= self.num_classes <= IGNORE_ID:
            raise ConfigError(
                f'model.num_classes must be in 0..{IGNORE_ID}, got {self.num_classes}'
            )
        if len(self.class_names) > IGNORE_ID or len(self.palette) > 3 * IGNORE_ID:
            raise ConfigError(
                f'model.class_names has {len(self.class_names)} names and model.palette '
                f'{len(self.palette)} values; at most {IGNORE_ID} classes '
                f'({3 * IGNORE_ID} values)'
            )
        if len(self.palette) % 3 or any(not 0 <= v <= 255 for v in self.palette):
            raise ConfigError(
                'model.palette must be a flat list of r, g, b values in 0..255 (3 per class), '
                f'got {len(self.palette)} values'
            )
        if self.palette and self.class_names and len(self.palette) != 3 * len(self.class_names):
            raise ConfigError(
                f'model.palette has {len(self.palette) // 3} colours but model.class_names '
                f'has {len(self.class_names)} names'
            )


@dataclass(frozen=True)
class NodeConfig:
    """Everything the node and the segmentation service are configured with.

    Attributes:
        camera_names: Camera names, in the order they are served.
        cameras: One entry per name of ``camera_names``.
        model: Checkpoint and class names.
        engine: Backend, device, precision, artifacts (see :class:`EngineConfig`).
        publish_color: ``auto`` (colour masks only while ``~/<cam>/color`` has subscribers),
            ``always`` or ``never``.
        input_qos: Subscription QoS preset (``SENSOR_DATA`` is best-effort; it also receives
            from reliable publishers).
        input_depth: Subscription queue depth (keep-last).
        output_qos: Publisher QoS preset (``DEFAULT`` is reliable).
        output_depth: Publisher queue depth (keep-last).
        max_age_ms: Drop a frame whose header stamp is older than this when the worker takes
            it (needs synchronised clocks); 0 disables the guard.
        batch: Segment the newest frame of every camera in one engine call.
        max_frame_side: Largest frame height or width accepted; bigger frames are counted as
            bad before they are decoded (a 4 KB JPEG can claim 30000x30000 pixels).
        max_engines: Engines kept at once, one per frame shape; beyond it the least recently
            used one is dropped (a stream whose size keeps changing cannot fill the memory).
        autostart: Configure and activate at start-up (a plain ``ros2 run`` works).
        enable: Start with inference enabled (``~/enable`` toggles it).
        diagnostics_period_s: Period of the ``/diagnostics`` updates.
        warn_period_s: Least time between two warnings about bad frames of one camera.
    """

    camera_names: tuple[str, ...] = ('camera',)
    cameras: tuple[CameraConfig, ...] = ()
    model: LabelModelConfig = field(default_factory=LabelModelConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    publish_color: str = 'auto'
    input_qos: str = 'SENSOR_DATA'
    input_depth: int = 1
    output_qos: str = 'DEFAULT'
    output_depth: int = 1
    max_age_ms: float = 0.0
    batch: bool = False
    max_frame_side: int = MAX_FRAME_SIDE
    max_engines: int = 8
    autostart: bool = True
    enable: bool = True
    diagnostics_period_s: float = 1.0
    warn_period_s: float = 5.0

    def __post_init__(self) -> None:
        """Check the cameras and the value ranges."""
        names = tuple(self.camera_names)
        object.__setattr__(self, 'camera_names', names)
        if not names:
            raise ConfigError('camera_names must name at least one camera')
        if len(names) > MAX_CAMERAS:
            raise ConfigError(f'camera_names lists {len(names)} cameras, at most {MAX_CAMERAS}')
        duplicates = sorted(n for n, count in Counter(names).items() if count > 1)
        if duplicates:
            raise ConfigError(f'camera_names lists {short_repr(duplicates[0])} more than once')
        given = {c.name: c for c in self.cameras}
        extra = sorted(set(given) - set(names))
        if extra:
            raise ConfigError(
                f'cameras.{extra[0]} is configured but not listed in camera_names {list(names)}'
            )
        object.__setattr__(
            self, 'cameras', tuple(given.get(n) or CameraConfig(name=n) for n in names)
        )
        for key in ('input_qos', 'output_qos'):
            if getattr(self, key) not in QOS_PRESETS:
                raise ConfigError(
                    f'{key} must be one of {", ".join(QOS_PRESETS)}, got {getattr(self, key)!r}'
                )
        if self.publish_color not in COLOR_MODES:
            raise ConfigError(
                f'publish_color must be one of {", ".join(COLOR_MODES)}, '
                f'got {self.publish_color!r}'
            )
        for key in ('input_depth', 'output_depth'):
            if not 1 <= getattr(self, key) <= MAX_DEPTH:
                raise ConfigError(
                    f'{key} must be in 1..{MAX_DEPTH}, got {short_repr(getattr(self, key))}'
                )
        if not MIN_SIDE <= self.max_frame_side <= _MAX_SIDE:
            raise ConfigError(
                f'max_frame_side must be in {MIN_SIDE}..{_MAX_SIDE}, '
                f'got {short_repr(self.max_frame_side)}'
            )
        for cam in self.cameras:
            if cam.size is not None and max(cam.size) > self.max_frame_side:
                raise ConfigError(
                    f'cameras.{cam.name}.size {list(cam.size)} is larger than max_frame_side '
                    f'{self.max_frame_side}: every frame would be refused'
                )
        if not 1 <= self.max_engines <= 1024:
            raise ConfigError(
                f'max_engines must be in 1..1024, got {short_repr(self.max_engines)}'
            )
        for key, top in (
            ('max_age_ms', MAX_AGE_MS),
            ('diagnostics_period_s', MAX_PERIOD_S),
            ('warn_period_s', MAX_PERIOD_S),
        ):
            value = getattr(self, key)
            if not math.isfinite(value) or not 0 <= value <= top:
                raise ConfigError(f'{key} must be in 0..{top:g}, got {short_repr(value)}')

    def camera(self, name: str) -> CameraConfig:
        """The configuration of camera ``name``."""
        for cam in self.cameras:
            if cam.name == name:
                return cam
        raise KeyError(name)


_NESTED = {'model': LabelModelConfig, 'engine': EngineConfig}


def node_config_from_dict(data: Mapping[str, Any], where: str = '') -> NodeConfig:
    """A :class:`NodeConfig` from nested ``ros__parameters`` content.

    Raises:
        ConfigError: An unknown key (named with its dotted path) or an invalid value.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(
            f'{clip(where)}ros__parameters must be a mapping, got {type(data).__name__}'
        )
    top = dict(data)
    values: dict[str, Any] = {}
    for key, cls in _NESTED.items():
        if key in top:
            values[key] = config_from_dict(cls, _none_for_empty(top.pop(key)), f'{where}{key}.')
    cameras = top.pop('cameras', {}) or {}
    if not isinstance(cameras, Mapping):
        raise ConfigError(f'{where}cameras must map camera names to {{topic, transport}}')
    if len(cameras) > MAX_CAMERAS:
        raise ConfigError(f'{where}cameras: {len(cameras)} entries, at most {MAX_CAMERAS}')
    for name, spec in cameras.items():
        if spec is not None and not isinstance(spec, Mapping):
            raise ConfigError(
                f'{clip(where)}cameras.{clip(name)} must be a mapping such as '
                f'{{topic: /front/image_raw}}, got {short_repr(spec)}'
            )
    values['cameras'] = tuple(
        config_from_dict(
            CameraConfig, {'name': str(name), **_none_for_empty(spec or {})}, f'cameras.{name}.'
        )
        for name, spec in cameras.items()
    )
    plain = {k: v for k, v in top.items() if k not in values}
    if 'camera_names' in plain and isinstance(plain['camera_names'], str):
        plain['camera_names'] = [plain['camera_names']]
    merged = config_from_dict(NodeConfig, plain, where)
    return NodeConfig(**{**_shallow(merged), **values})


_OPTIONAL_SIZES = ('input_size', 'size')


def _none_for_empty(section: Any) -> Any:
    """``input_size: []`` or ``size: []`` (the ROS spelling of unset) becomes None."""
    if isinstance(section, Mapping):
        return {
            k: None if k in _OPTIONAL_SIZES and v in ([], ()) else v for k, v in section.items()
        }
    return section


def _shallow(config: NodeConfig) -> dict[str, Any]:
    return {f.name: getattr(config, f.name) for f in fields(config)}


def node_config_from_flat(flat: Mapping[str, Any]) -> NodeConfig:
    """A :class:`NodeConfig` from dotted ROS parameter names (``engine.backend``)."""
    nested: dict[str, Any] = {}
    for dotted, value in flat.items():
        node = nested
        *parents, leaf = dotted.split('.')
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f'parameter {clip(dotted)!r} conflicts with a scalar parameter')
        node[leaf] = list(value) if isinstance(value, tuple) else value
    return node_config_from_dict(nested)


def node_config_to_flat(config: NodeConfig) -> dict[str, Any]:
    """Dotted parameter name -> ROS-compatible value (scalars and homogeneous lists)."""
    flat: dict[str, Any] = {}
    for f in fields(config):
        value = getattr(config, f.name)
        if f.name == 'cameras':
            for cam in value:
                for key, item in config_to_dict(cam).items():
                    if key != 'name':
                        flat[f'cameras.{cam.name}.{key}'] = (
                            [] if item is None else _ros_value(item)
                        )
        elif f.name in _NESTED:
            for key, item in config_to_dict(value).items():
                flat[f'{f.name}.{key}'] = [] if item is None else _ros_value(item)
        else:
            flat[f.name] = _ros_value(value)
    return flat


def _ros_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def load_node_config(path: str | Path) -> NodeConfig:
    """Read a params YAML (``/**:`` or ``<node name>:`` -> ``ros__parameters:``).

    Raises:
        ConfigError: Missing or malformed file, several node entries, unknown or invalid keys.
    """
    return load_node_params(path)[0]


def load_node_params(path: str | Path) -> tuple[NodeConfig, dict[str, Any]]:
    """:func:`load_node_config` and the parameters the file sets (:func:`read_node_params`).

    Raises:
        ConfigError: As :func:`load_node_config`.
    """
    flat = read_node_params(path)
    try:
        return node_config_from_flat(flat), flat
    except ConfigError as err:
        raise ConfigError(f'{path}: {err}') from err


def read_node_params(path: str | Path) -> dict[str, Any]:
    """A params YAML's parameters by dotted name, read as ROS 2 reads them.

    Nested maps and dotted keys are the same parameter (``engine: {backend: eager}`` is
    ``engine.backend: eager``); a parameter given twice, one without a value and an empty
    list (rcl cannot type it, and the node would fail to start) are refused.

    Raises:
        ConfigError: Missing or malformed file, several node entries, or one of the above.
    """
    path = Path(path)
    doc = read_yaml(path, 'params file')
    if not isinstance(doc, Mapping) or len(doc) != 1:
        raise ConfigError(
            f'{path}: expected one node entry such as "/**:" holding "ros__parameters:", '
            f'got {short_repr(list(doc)) if isinstance(doc, Mapping) else type(doc).__name__}'
        )
    ((node, body),) = doc.items()
    if not isinstance(body, Mapping) or set(body) != {'ros__parameters'}:
        raise ConfigError(f'{path}: {short_repr(node)} must hold exactly one key, ros__parameters')
    params = body['ros__parameters'] or {}
    if not isinstance(params, Mapping):
        raise ConfigError(f'{path}: ros__parameters must be a mapping')
    flat: dict[str, Any] = {}
    _flatten(params, '', flat, path)
    return flat


def _flatten(params: Mapping[Any, Any], prefix: str, flat: dict[str, Any], path: Path) -> None:
    for key, value in params.items():
        if not isinstance(key, str):
            under = f' under {prefix[:-1]}' if prefix else ''
            raise ConfigError(
                f'{path}: keys{under} must be names, got {short_repr(key)} ({type(key).__name__})'
            )
        name = f'{prefix}{key}'
        if len(key) > 256:
            raise ConfigError(f'{path}: parameter name {clip(name)} is too long')
        if isinstance(value, Mapping):
            _flatten(value, f'{name}.', flat, path)
            continue
        if value is None:
            raise ConfigError(
                f'{path}: {clip(name)} has no value (ROS 2 refuses it; leave it out)'
            )
        if isinstance(value, list) and not value:
            raise ConfigError(
                f'{path}: {clip(name)}: [] cannot be read by ROS 2 (an empty list has no type) '
                'and the node would not start; leave the key out to keep its default'
            )
        if name in flat:
            raise ConfigError(f'{path}: parameter {clip(name)} is given twice')
        flat[name] = value
