"""Files that are whole or absent: atomic writes, hashes, JSON (NaN as null), output folders.

A failed command leaves no empty output folder behind (``no_empty_folders_left``), and a
report being written is finished before a Ctrl-C stops the command (``ctrl_c_after``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
import hashlib
import json
import math
import os
from pathlib import Path
import signal
import sys
import tempfile
from typing import Any

__all__ = [
    'atomic_write',
    'ctrl_c_after',
    'file_sha256',
    'jsonable',
    'no_empty_folders_left',
    'sigint_handled_by',
    'write_json',
]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(
    path: str | Path, write: Callable[[Path], Any], companions: tuple[str, ...] = ()
) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place.

    A reader sees the old file or the whole new one, never a half-written one; nothing is
    left behind when ``write`` raises (or leaves extra files next to ``tmp``, as the ONNX
    exporter does for external data). The file gets the mode a plain ``open`` would give it
    (0666 less the umask), not the 0600 of a temporary file. ``companions`` are suffixes of
    files ``write`` puts beside ``tmp`` under its name (OpenVINO's ``.bin`` beside the
    ``.xml``): each is renamed to ``path`` with that suffix, before ``path`` itself.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f'.{path.stem}.', suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        for suffix in (*companions, ''):
            part = tmp.with_suffix(suffix) if suffix else tmp
            os.chmod(part, 0o666 & ~_umask())
            os.replace(part, path.with_suffix(suffix) if suffix else path)
    except BaseException:
        for suffix in companions:
            tmp.with_suffix(suffix).unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
        raise
    return path


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars and arrays unpacked, NaN and infinities -> None."""
    if hasattr(value, 'tolist') and not isinstance(value, (str, bytes)):
        value = value.tolist()  # numpy arrays and scalars
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def write_json(data: Any, path: str | Path) -> Path:
    """Write ``data`` as indented JSON, atomically (NaN and infinities written as null)."""
    text = json.dumps(jsonable(data), indent=2, allow_nan=False) + '\n'
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding='utf-8'))


@contextmanager
def no_empty_folders_left(path: str | Path) -> Iterator[None]:
    """On failure (Ctrl-C too), remove the still-empty folders the block made at or above path.

    A folder holding anything, and every folder that existed before, is kept.
    """
    path = Path(path).absolute()
    new = None  # the highest folder of ``path`` that does not exist yet
    for folder in (path, *path.parents):
        if folder.exists():
            break
        new = folder
    try:
        yield
    except BaseException:
        if new is not None and new.is_dir():
            below = sorted((d for d in new.rglob('*') if d.is_dir()), key=lambda d: -len(d.parts))
            for folder in (*below, new):
                try:
                    folder.rmdir()  # only an empty one goes
                except OSError:
                    pass
        raise


@contextmanager
def sigint_handled_by(handler: Callable[[int, Any], None]) -> Iterator[None]:
    """Run the block with ``handler`` for Ctrl-C (SIGINT), then restore the previous handler.

    Outside the main thread, where Python cannot set signal handlers, Ctrl-C is left as it is.
    """
    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def ctrl_c_after(what: str) -> Iterator[None]:
    """Hold Ctrl-C until the block (writing a report) is done, then stop as it asked.

    A report cut off half-way would lose what the run measured; the writes take a second.
    """
    pressed: list[int] = []

    def hold(signum: int, frame: object) -> None:
        if not pressed:
            print(f'segnode: Ctrl-C: finishing {what} first', file=sys.stderr)
        pressed.append(signum)

    with sigint_handled_by(hold):
        yield
    if pressed:
        raise KeyboardInterrupt
