"""Hostile params files (issue 28): each is refused in seconds with one short line.

The files come from ``test/hostile.py``; the refusal must come from the Python API
(``load_node_config``) and from ``segnode replay --params`` (exit 2, one ``segnode: error:``
line, no traceback), with every value from the file clipped to a short excerpt.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
import time

import hostile
import pytest

from segnode.cli import main
from segnode.config import read_yaml
from segnode.errors import clip, ConfigError
from segnode.pipeline.config import load_node_config

SHORT = 600  # characters: a refusal names the file (a tmp path), allowed keys, clipped values


def _write(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / 'params.yaml'
    if isinstance(content, str):
        path.write_text(content)
    else:
        path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ('content', 'message'),
    [pytest.param(c, m, id=name) for name, c, m in hostile.PARAMS],
)
def test_a_hostile_params_file_is_refused_in_one_short_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: Callable[[], str | bytes],
    message: str,
) -> None:
    path = _write(tmp_path, content())
    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        load_node_config(path)
    assert time.perf_counter() - t0 < 10.0
    text = str(info.value)
    assert message in text and '\n' not in text and len(text) < SHORT
    assert main(['replay', str(tmp_path / 'no_bag'), '--params', str(path)]) == 2
    err = capsys.readouterr().err
    assert 'Traceback' not in err
    (line,) = err.splitlines()
    assert line.startswith('segnode: error: ') and message in line and len(line) < SHORT


def test_the_size_limit_is_checked_before_parsing(tmp_path: Path) -> None:
    path = _write(tmp_path, hostile.PARAMS_OVER_LIMIT())
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match='is larger than 4 MiB'):
        read_yaml(path, 'params file')
    assert time.perf_counter() - t0 < 0.5


def test_a_mapping_section_that_is_not_one_is_named_by_its_key(tmp_path: Path) -> None:
    path = _write(tmp_path, '/**:\n  ros__parameters:\n    model: 3\n')
    with pytest.raises(ConfigError, match=r'params.yaml: model: expected a mapping, got int$'):
        load_node_config(path)


@pytest.mark.parametrize(
    ('text', 'limit', 'expected'),
    [
        ('short', 80, 'short'),
        ('a\x00b\nc', 80, 'a?b?c'),
        ('x' * 1000, 10, 'xxxxxxx... (1000 characters)'),
    ],
)
def test_clip_gives_a_short_printable_excerpt(text: str, limit: int, expected: str) -> None:
    assert clip(text, limit) == expected
