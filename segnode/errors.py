"""Exception hierarchy shared by every layer of segnode."""

from __future__ import annotations

import reprlib

__all__ = [
    'clip',
    'describe',
    'one_line',
    'short_repr',
    'BagReadError',
    'BagWriteError',
    'CheckpointError',
    'ConfigError',
    'DatasetError',
    'EngineBuildError',
    'EngineUnavailable',
    'ImageFormatError',
    'ReplayError',
    'SegnodeError',
]


class SegnodeError(Exception):
    """Base class of every error segnode raises on purpose."""


class ConfigError(SegnodeError):
    """A configuration key or value is unknown or invalid."""


class CheckpointError(SegnodeError):
    """A checkpoint cannot be read or does not match the model it is loaded into."""


class EngineBuildError(SegnodeError):
    """An inference engine could not be built or failed its parity gate."""


class EngineUnavailable(EngineBuildError):
    """A requested backend is not installed or not usable on this machine."""


class ImageFormatError(SegnodeError):
    """An image message or array has an unsupported or inconsistent layout."""


class BagReadError(SegnodeError):
    """A rosbag2 bag cannot be read."""


class BagWriteError(SegnodeError):
    """A rosbag2 bag cannot be written (the output exists, or writing failed)."""


class ReplayError(SegnodeError):
    """A replay cannot run as asked (labels, topics, options)."""


class DatasetError(SegnodeError):
    """A dataset folder, file or label is missing, unreadable or inconsistent."""


def clip(text: object, limit: int = 80) -> str:
    """``text`` as a short printable excerpt for an error message.

    Values from files (keys, names, paths) can be megabytes long or hold control characters:
    each character that is not printable becomes ``?``, and a longer text is cut to ``limit``
    characters with ``...`` and its full length, so that every message stays one short line.
    """
    text = str(text)
    cut = len(text) > limit
    shown = text[: max(limit - 3, 1)] if cut else text
    shown = ''.join(c if c.isprintable() else '?' for c in shown)
    return f'{shown}... ({len(text)} characters)' if cut else shown


def short_repr(value: object) -> str:
    """``repr`` cut to about 80 characters (values from files can be huge)."""
    return _REPR.repr(value)


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 6
_REPR.maxlevel = 3


def one_line(err: BaseException) -> str:
    """The error's message on one line (white space folded), or its type's name."""
    return ' '.join(str(err).split()) or type(err).__name__


def describe(err: BaseException) -> str:
    """One line naming what went wrong: a SegnodeError's message, else ``Type: message``."""
    return (
        one_line(err)
        if isinstance(err, SegnodeError)
        else f'{type(err).__name__}: {one_line(err)}'
    )
