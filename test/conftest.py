"""Shared pytest fixtures: nothing model-specific lives here."""

from __future__ import annotations

from collections.abc import Iterator
import logging
import os
from pathlib import Path
import signal

import pytest

CAMVID_DIRS = ('train', 'val', 'trainannot', 'valannot')


@pytest.fixture(scope='session')
def camvid_root() -> Path:
    """Root of the real 11-class CamVid release, from ``SEGNODE_CAMVID_ROOT``.

    Skips the test when the variable is unset or the folder lacks the expected split folders.
    """
    value = os.environ.get('SEGNODE_CAMVID_ROOT')
    if not value:
        pytest.skip(
            'SEGNODE_CAMVID_ROOT is not set: real CamVid data not available '
            '(.ci/run points it at ../shared/data/camvid)'
        )
    root = Path(value)
    missing = [name for name in CAMVID_DIRS if not (root / name).is_dir()]
    if missing:
        folders = ', '.join(f'{name}/' for name in missing)
        pytest.skip(f'SEGNODE_CAMVID_ROOT={root} is not a CamVid root: it lacks {folders}')
    return root


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test remembers engine choices in its own cache folder, never the user's."""
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path_factory.mktemp('cache')))


@pytest.fixture(autouse=True)
def _segnode_logs_propagate() -> None:
    """Let segnode's logs reach ``caplog`` in a sourced ROS shell too.

    launch (imported by launch_testing's pytest plugin there) makes every logger created after
    it non-propagating (``launch.logging.LaunchLogger``), and segnode's module loggers are
    created after it.
    """
    for name, logger in logging.root.manager.loggerDict.items():
        if name.startswith('segnode') and isinstance(logger, logging.Logger):
            logger.propagate = True


@pytest.fixture
def default_sigint() -> Iterator[None]:
    """Python's own Ctrl-C handler for the test, whatever the runner had.

    A test runner started in the background by a non-interactive shell inherits SIGINT
    ignored; tests that press Ctrl-C need the handler an interactive ``segnode`` has.
    """
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)
