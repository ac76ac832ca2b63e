"""ament_pep257 on segnode's Python sources (runs where ROS 2's ament_lint is installed)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PATHS = [str(REPO / name) for name in ('segnode', 'test', 'launch', 'setup.py')]
# Google docstrings, as ruff checks them; missing docstrings (D1xx) are allowed, as in ament.
ARGS = ['--convention', 'google', '--add-ignore', *(f'D10{i}' for i in range(8))]


def test_pep257() -> None:
    # Skipped here, not at import: Humble's launch_testing plugin ends all collection on a
    # module-level skip.
    ament_pep257 = pytest.importorskip(
        'ament_pep257.main', reason='ament_pep257 is not installed (it comes with ROS 2)'
    )
    rc = ament_pep257.main(argv=[*PATHS, *ARGS])
    assert rc == 0, 'Found code style errors / warnings'
