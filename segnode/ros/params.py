"""ROS 2 parameters <-> :class:`~segnode.pipeline.config.NodeConfig`.

One read-only parameter per entry of :func:`~segnode.pipeline.config.node_config_to_flat`, named by
its dotted path (``engine.backend``), with the dataclass default and the dataclass docstring as
description. ``camera_names`` is declared and read first; then ``cameras.<name>.topic``,
``.transport`` and ``.qos`` for each listed name. The values go back through
:func:`~segnode.pipeline.config.node_config_from_flat`, so the node validates exactly as the core
does and an invalid value is a :class:`~segnode.errors.ConfigError` naming the key.

Typing: bools, ints, strings and non-empty lists are statically typed from their default.
Floats and empty-list defaults use dynamic typing, because rclpy infers ``BYTE_ARRAY`` from
``[]`` and rejects an integer override (``max_age_ms: 50``) of a double; the core checks those.
rclpy imports live inside the functions that need them, so the pure parts import anywhere.
"""

from __future__ import annotations

import array
from collections.abc import Mapping
import inspect
import re
from typing import Any, NamedTuple

from segnode.config import BACKEND_CHOICES, EngineConfig, PRECISION_CHOICES
from segnode.errors import ConfigError
from segnode.pipeline.config import (
    CameraConfig,
    COLOR_MODES,
    LabelModelConfig,
    node_config_from_flat,
    node_config_to_flat,
    NodeConfig,
    QOS_PRESETS,
    TRANSPORTS,
)

__all__ = [
    'IGNORED_OVERRIDES',
    'ParamSpec',
    'camera_specs',
    'declare',
    'node_specs',
    'read_node_config',
    'unknown_overrides',
]

READ_ONLY_NOTE = 'Read-only: read at configure; set it in the params file.'

# Overrides that are not segnode's but are legitimately passed to the node.
IGNORED_OVERRIDES = ('use_sim_time', 'start_type_description_service')
_IGNORED_PREFIXES = ('qos_overrides.',)

_CHOICES = {
    'publish_color': COLOR_MODES,
    'input_qos': QOS_PRESETS,
    'output_qos': QOS_PRESETS,
    'engine.backend': BACKEND_CHOICES,
    'engine.precision': PRECISION_CHOICES,
    'transport': TRANSPORTS,
    'qos': ('', *QOS_PRESETS),
}


class ParamSpec(NamedTuple):
    """How one parameter is declared."""

    name: str
    default: Any
    description: str
    dynamic: bool  # dynamic typing (floats, empty-list defaults)
    choices: tuple[str, ...] = ()


def _attribute_docs(cls: type) -> dict[str, str]:
    """``Attributes:`` entries of a Google-style class docstring, markup stripped."""
    docs: dict[str, str] = {}
    key = None
    inside = False
    for line in (inspect.getdoc(cls) or '').splitlines():
        if line.strip() == 'Attributes:':
            inside = True
            continue
        if not inside:
            continue
        if line and not line.startswith(' '):
            break
        entry = re.match(r'^ {4}(\w+): (.*)$', line)
        if entry:
            key = entry[1]
            docs[key] = entry[2].strip()
        elif key and line.startswith(' ' * 8):
            docs[key] += ' ' + line.strip()
    return {key: _unmark(text) for key, text in docs.items()}


def _unmark(text: str) -> str:
    """Sphinx roles (:class:`~a.B` -> B) and literals (``x`` -> x) as plain text."""
    text = re.sub(r':\w+:`~?(?:[\w.]*\.)?([^`.]*)`', r'\1', text)
    return re.sub(r'``([^`]*)``', r'\1', text)


def _doc_sections() -> dict[str, dict[str, str]]:
    return {
        '': _attribute_docs(NodeConfig),
        'model': _attribute_docs(LabelModelConfig),
        'engine': _attribute_docs(EngineConfig),
        'cameras': _attribute_docs(CameraConfig),
    }


def _spec(name: str, default: Any, docs: Mapping[str, Mapping[str, str]]) -> ParamSpec:
    section, _, leaf = name.rpartition('.')
    table = docs['cameras' if section.startswith('cameras.') else section]
    choices = _CHOICES.get(name) or (
        _CHOICES.get(leaf, ()) if section.startswith('cameras.') else ()
    )
    description = table.get(leaf, '')
    if choices:
        description += f' One of: {", ".join(repr(c) for c in choices)}.'
    dynamic = isinstance(default, float) or (isinstance(default, list) and not default)
    return ParamSpec(name, default, f'{description} {READ_ONLY_NOTE}'.strip(), dynamic, choices)


def node_specs() -> list[ParamSpec]:
    """Every parameter except the per-camera ones, ``camera_names`` first."""
    docs = _doc_sections()
    flat = node_config_to_flat(NodeConfig())
    names = ['camera_names'] + [n for n in flat if n != 'camera_names']
    return [_spec(n, flat[n], docs) for n in names if not n.startswith('cameras.')]


def camera_specs(camera_names: list[str]) -> list[ParamSpec]:
    """``cameras.<name>.*`` of every camera, defaults from :class:`CameraConfig`.

    Raises:
        ConfigError: No camera, a duplicate or an invalid name.
    """
    docs = _doc_sections()
    flat = node_config_to_flat(NodeConfig(camera_names=tuple(camera_names)))
    return [_spec(n, v, docs) for n, v in flat.items() if n.startswith('cameras.')]


def declare(node: Any, specs: list[ParamSpec]) -> None:
    """Declare the parameters of ``specs`` that ``node`` does not have yet.

    Raises:
        ConfigError: An override of the wrong type, naming the parameter (rclpy's message).
    """
    from rcl_interfaces.msg import ParameterDescriptor
    from rclpy.exceptions import ParameterException

    for spec in specs:
        if node.has_parameter(spec.name):
            continue
        descriptor = ParameterDescriptor(
            name=spec.name,
            description=spec.description,
            additional_constraints=f'one of {list(spec.choices)}' if spec.choices else '',
            read_only=True,
            dynamic_typing=spec.dynamic,
        )
        try:
            node.declare_parameter(spec.name, spec.default, descriptor)
        except ParameterException as err:
            raise ConfigError(f'parameter {spec.name}: {err}') from err


def _plain(value: Any) -> Any:
    """Parameter value -> what the core expects (rclpy arrays come as ``array.array``)."""
    if isinstance(value, (list, tuple, array.array)):
        return list(value)
    return value


def read_node_config(node: Any) -> NodeConfig:
    """Declare (once) and read every parameter, and validate them into a :class:`NodeConfig`.

    Raises:
        ConfigError: A wrong type or an invalid value; the message names the parameter.
    """
    specs = node_specs()
    declare(node, specs)
    camera_names = _plain(node.get_parameter('camera_names').value)
    if not isinstance(camera_names, list) or not all(isinstance(n, str) for n in camera_names):
        raise ConfigError(f'camera_names must be a list of names, got {camera_names!r}')
    cams = camera_specs(camera_names)
    declare(node, cams)
    flat = {s.name: _plain(node.get_parameter(s.name).value) for s in specs + cams}
    return node_config_from_flat(flat)


def unknown_overrides(node: Any, config: NodeConfig) -> list[str]:
    """Parameters given to the node (params file, ``-p``) that segnode does not declare.

    rclpy silently ignores an override nobody declares, so the node refuses to configure with
    one: a typo such as ``engine.backnd`` would otherwise pass unnoticed. Reads rclpy's (private)
    ``_parameter_overrides``; returns an empty list where it is not available.
    """
    overrides = getattr(node, '_parameter_overrides', None)
    if not isinstance(overrides, Mapping):
        return []
    known = set(node_config_to_flat(config))
    return sorted(
        name
        for name in overrides
        if name not in known
        and name not in IGNORED_OVERRIDES
        and not name.startswith(_IGNORED_PREFIXES)
    )
