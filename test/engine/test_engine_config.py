"""EngineConfig: defaults, validation, and building from a mapping."""

from __future__ import annotations

import pytest

from segnode.config import config_from_dict, EngineConfig
from segnode.errors import ConfigError


def test_defaults_pick_the_fastest_backend_on_any_device() -> None:
    config = EngineConfig()
    assert (config.backend, config.device, config.precision) == ('auto', 'auto', 'auto')
    assert config.build_if_missing is False and config.parity_gate is True
    assert (config.min_agreement, config.tie_margin, config.max_miou_drop) == (0.995, 1.0, 0.002)


def test_from_mapping_turns_lists_into_tuples() -> None:
    config = config_from_dict(
        EngineConfig, {'backend': 'onnxruntime', 'device': 'cuda:1', 'input_size': [512, 1024]}
    )
    assert config.input_size == (512, 1024) and config.device == 'cuda:1'


@pytest.mark.parametrize(
    ('values', 'message'),
    [
        ({'backend': 'trt'}, 'engine.backend must be one of auto, tensorrt'),
        ({'device': 'gpu0'}, 'engine.device must be auto, cpu, cuda or cuda:N'),
        ({'precision': 'fp8'}, 'engine.precision must be one of'),
        (
            {'precision': 'int8', 'backend': 'eager'},
            'int8 runs on tensorrt or onnxruntime or openvino, not eager',
        ),
        ({'tie_margin': -1.0}, r'engine.tie_margin must be in \[0, 1000\]'),
        ({'input_size': (16, 64)}, 'engine.input_size must be'),
        ({'max_side': 1000}, 'engine.max_side must be a multiple of 32'),
        ({'min_agreement': 1.5}, r'engine.min_agreement must be in \[0, 1\]'),
        ({'parity_frames': 0}, 'engine.parity_frames must be in 1..1000'),
        ({'threads': 10**23}, 'engine.threads must be in 0..1024'),
        ({'max_side': 2**40}, 'engine.max_side must be a multiple of 32 in 64..8192'),
    ],
)
def test_invalid_values_name_the_field(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        EngineConfig(**values)  # type: ignore[arg-type]


def test_unknown_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown key 'engine.backends'"):
        config_from_dict(EngineConfig, {'backends': 'eager'}, 'engine.')


def test_one_backend_table_for_the_one_backend_list() -> None:
    from segnode.config import BACKENDS, INT8_BACKENDS
    from segnode.engine.backends import AUTO_ORDER, BACKEND_TABLE

    assert tuple(BACKEND_TABLE) == BACKENDS
    functions = ('check', 'build', 'export', 'load', 'key_fields')
    for name, module in BACKEND_TABLE.items():
        assert module.NAME == name and module.TITLE
        assert all(callable(getattr(module, f)) for f in functions)
        assert isinstance(module.BUILDS_ON_THE_SPOT, bool) and isinstance(module.BUILD_TIME, str)
    for device, order in AUTO_ORDER.items():  # every backend that runs on the device
        assert set(order) == {n for n, m in BACKEND_TABLE.items() if m.PRECISIONS.get(device)}
    runs_int8 = {
        n for n, m in BACKEND_TABLE.items() if any('int8' in p for p in m.PRECISIONS.values())
    }
    assert runs_int8 == set(INT8_BACKENDS)
