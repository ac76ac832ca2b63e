"""Frozen configuration dataclasses and the one place that turns mappings into them.

Defaults live only in the dataclasses. Mappings (YAML files, checkpoint metadata, command-line
overrides) become configs through ``config_from_dict``, which rejects unknown keys and wrong
types with an error naming the key.
"""

from __future__ import annotations

from collections.abc import Mapping
import dataclasses
from dataclasses import dataclass
import types
import typing
from typing import Any, TypeVar

from segnode.errors import ConfigError

__all__ = ['ModelConfig', 'config_from_dict', 'config_to_dict']

T = TypeVar('T')


@dataclass(frozen=True)
class ModelConfig:
    """MFARANet architecture options.

    Attributes:
        num_classes: Number of output classes K (19 Cityscapes, 11 CamVid).
        width: Decoder width (128 in the paper).
        equalizers: Insert Scale Equalizers at every multi-level fusion input.
        per_channel_equalizers: Per-channel equalizer constants instead of one scalar pair.
        boundary_heads: Build the training-only per-scale boundary heads.
        pruned: Inference from the 1/8 branch only (MFARANet-Pruned), computing only the
            subgraph that feeds it.
    """

    num_classes: int = 19
    width: int = 128
    equalizers: bool = True
    per_channel_equalizers: bool = False
    boundary_heads: bool = False
    pruned: bool = False

    def __post_init__(self) -> None:
        """Validate value ranges."""
        if not 1 <= self.num_classes <= 255:
            raise ConfigError(
                'model.num_classes must be in 1..255 (255 is the ignore id), '
                f'got {self.num_classes}'
            )
        if self.width < 2 or self.width % 2:
            raise ConfigError(f'model.width must be an even number >= 2, got {self.width}')


def _type_ok(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (tuple, list):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return (
            isinstance(value, (list, tuple)) and all(_type_ok(v, args[0]) for v in value)
            if args
            else isinstance(value, (list, tuple))
        )
    if origin is dict:
        return isinstance(value, dict)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def config_from_dict(cls: type[T], data: Mapping[str, Any], where: str = '') -> T:
    """Build the frozen dataclass ``cls`` from a mapping, checking keys and types.

    Args:
        cls: A dataclass type.
        data: Field values; missing fields take the dataclass default.
        where: Prefix for error messages (e.g. ``'model.'`` or a file name).

    Raises:
        ConfigError: A key is unknown or a value has the wrong type; the message names it.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(
            f'{where or cls.__name__}: expected a mapping, got {type(data).__name__}'
        )
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ConfigError(
            f'unknown key {where}{unknown[0]!r}; allowed keys: {", ".join(sorted(fields))}'
        )
    values: dict[str, Any] = {}
    for key, value in data.items():
        if not _type_ok(value, hints[key]):
            raise ConfigError(
                f'{where}{key} must be of type {hints[key]}, '
                f'got {value!r} ({type(value).__name__})'
            )
        if typing.get_origin(hints[key]) is tuple and isinstance(value, list):
            value = tuple(value)
        values[key] = value
    return cls(**values)


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain-data view of a config dataclass (for YAML, JSON and checkpoint metadata)."""
    return dataclasses.asdict(config)
