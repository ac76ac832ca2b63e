"""What the bag libraries raise, as one line that says what it most likely means.

rosbags, its sqlite driver (apsw), its MCAP parser and the decompressors raise their own errors
and built-in ones on a damaged file. :func:`reading` turns those (and only those: a built-in
error raised by segnode's own code is a bug and surfaces as one) into a ``BagReadError``
whose text names the file and says whether the file looks cut off (with how to recover it),
unsupported, or corrupt.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
import struct

import apsw
from rosbags.rosbag2 import ReaderError
from rosbags.serde import SerdeError

from segnode.errors import BagReadError, ConfigError, one_line

__all__ = ['BAG_ERRORS', 'LIBRARY_ERRORS', 'RECOVER', 'reading']

# What rosbags lets escape from a truncated or corrupt storage file: its own ReaderError, the
# sqlite driver's errors (apsw), the metadata's YAML (ConfigError from read_yaml) and I/O and
# struct errors. These are always a problem of the bag.
BAG_ERRORS = (ReaderError, SerdeError, ConfigError, apsw.Error, OSError, EOFError, struct.error)
# The MCAP parser and the decompressors also raise built-in errors on a corrupt record (a bad
# length asks for more memory than there is or overflows a size, a bad opcode is a missing
# key): these are translated only when raised inside the bag libraries. Raised by segnode's
# own code they are a bug, and surface as one.
LIBRARY_ERRORS = (
    ValueError,
    TypeError,
    IndexError,
    KeyError,
    RuntimeError,
    MemoryError,
    OverflowError,
)
_BAG_LIBRARIES = frozenset(
    {'rosbags', 'apsw', 'sqlite3', 'mcap', 'zstandard', 'zstd', 'backports', 'lz4', 'yaml'}
)


def _raised_in_a_bag_library(err: BaseException) -> bool:
    """The innermost Python frame of ``err``'s traceback is in one of the bag libraries."""
    tb, module = err.__traceback__, ''
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get('__name__', ''))
        tb = tb.tb_next
    return module.partition('.')[0] in _BAG_LIBRARIES


# What rosbags says when an MCAP file is cut short (a recorder killed mid-write, a copy that
# stopped): no end magic, footer or summary where the end of the file should have them.
_CUT_OFF = ('File end magic is invalid', 'Invalid MCAP footer', 'Invalid MCAP summary offset')
RECOVER = (
    'the file is cut off (its recording did not finish); recover what it holds with '
    '`mcap recover IN.mcap -o OUT.mcap` or `ros2 bag reindex` (docs/replay.md, "Damaged bags")'
)
# Errors that name something unsupported, not damage.
_UNSUPPORTED = ('not supported', 'Unsupported', 'Unrecognized', 'Profile is not ros2')


def _explained(err: BaseException) -> str:
    """One line: the library's reason and what it most likely means."""
    reason = one_line(err).rstrip('.')
    if any(marker in reason for marker in _CUT_OFF):
        return f'{reason}: {RECOVER}'
    if any(marker in reason for marker in _UNSUPPORTED):
        return reason
    return f'{reason} (truncated or corrupt?)'


@contextmanager
def reading(path: Path, what: str, *, parsing: bool = False) -> Iterator[None]:
    """Translate the bag libraries' errors (only theirs) into one-line ``BagReadError``.

    ``parsing``: the block picks the fields of the bag's metadata apart itself, so a built-in
    error raised there (a missing key, a wrong type) is the file's fault too.
    """
    try:
        yield
    except BAG_ERRORS as err:
        raise BagReadError(f'cannot {what} {path}: {_explained(err)}') from err
    except LIBRARY_ERRORS as err:
        if not (parsing or _raised_in_a_bag_library(err)):
            raise
        raise BagReadError(f'cannot {what} {path}: {_explained(err)}') from err
