"""ament_flake8 on segnode's Python sources (runs where ROS 2's ament_lint is installed)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PATHS = [str(REPO / name) for name in ('segnode', 'test', 'launch', 'setup.py')]


def test_flake8() -> None:
    # Skipped here, not at import: Humble's launch_testing plugin ends all collection on a
    # module-level skip.
    ament_flake8 = pytest.importorskip(
        'ament_flake8.main', reason='ament_flake8 is not installed (it comes with ROS 2)'
    )
    # setup.cfg [flake8] is ament_flake8.ini plus the choices ruff makes (see its comment).
    argv = ['--config', str(REPO / 'setup.cfg'), *PATHS]
    rc, errors = ament_flake8.main_with_errors(argv=argv)
    assert rc == 0, f'Found {len(errors)} code style errors / warnings:\n' + '\n'.join(errors)
