"""Argument types of the ``segnode`` command: sizes, counts and rates checked in one place.

Each is an argparse ``type=``: a bad value is argparse's own one-line usage error (exit 2),
before any model is loaded or file written.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from segnode.config import MIN_SIDE, SIDE_LIMIT
from segnode.errors import ConfigError

__all__ = [
    'MIN_SIDE',
    'count',
    'non_negative',
    'output_dir',
    'output_file',
    'rate',
    'side',
]


def side(text: str) -> int:
    """A frame height or width: an integer in ``MIN_SIDE..SIDE_LIMIT``."""
    value = _integer(text)
    if not MIN_SIDE <= value <= SIDE_LIMIT:
        raise argparse.ArgumentTypeError(
            f'{value} is not a frame side in {MIN_SIDE}..{SIDE_LIMIT} pixels'
        )
    return value


def count(text: str) -> int:
    """A count of frames, calls or images: an integer >= 1."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'{value} must be at least 1')
    return value


def non_negative(text: str) -> int:
    """An integer >= 0 (0 meaning "all" or "none", as each option says)."""
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f'{value} must be 0 or more')
    return value


def rate(text: str) -> float:
    """A rate or speed factor: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not a number') from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f'{text} must be a finite number > 0')
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not an integer') from None


def _writable_parent(path: Path, what: str) -> None:
    """The nearest existing ancestor of ``path`` is a writable folder (so it can be made)."""
    parent = path.parent
    while not parent.exists():
        if parent.parent == parent:
            break
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f'{what} {path}: {parent} is a file, not a folder')
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f'{what} {path}: {parent} is not writable')


def output_file(path: str | Path | None, what: str) -> None:
    """Refuse, before any work, an output file that cannot be written.

    Raises:
        ConfigError: ``path`` is a folder, or its folder cannot be created or written.
    """
    if not path:
        return
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f'{what} {target} is a folder; give a file name')
    if target.exists() and not os.access(target, os.W_OK):
        raise ConfigError(f'{what} {target} is not writable')
    _writable_parent(target, what)


def output_dir(path: str | Path | None, what: str, *, new_bag: bool = False) -> None:
    """Refuse, before any work, an output folder that cannot be created or written.

    Args:
        path: The folder ('' or None: nothing to check).
        what: The option, for messages.
        new_bag: The folder is a bag to create, which must not exist yet.

    Raises:
        ConfigError: ``path`` is a file (or an existing bag), or cannot be written.
    """
    if not path:
        return
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise ConfigError(f'{what} {target} is a file, not a folder')
    if target.exists() and new_bag:
        raise ConfigError(f'{target} already exists; bags are never overwritten')
    if target.is_dir() and not os.access(target, os.W_OK | os.X_OK):
        raise ConfigError(f'{what} {target} is not writable')
    _writable_parent(target, what)
