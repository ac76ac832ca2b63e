"""Errors of the data layer."""

from __future__ import annotations

from segnode.errors import SegnodeError

__all__ = ['DatasetError']


class DatasetError(SegnodeError):
    """A dataset folder, file or label is missing, unreadable or inconsistent."""
