"""Subcommands of the engine layer: export and bench."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

__all__ = ['add_commands']


def add_commands(sub: Any, handlers: dict[str, Callable[[argparse.Namespace], int]]) -> None:
    """Register this layer's subcommands (none yet) on the ``segnode`` parser."""
