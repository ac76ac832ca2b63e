"""Writing rosbag2 bags atomically with rosbags, and building the messages they hold.

:class:`BagWriter` writes a new bag atomically. rosbags writes metadata version 8 or 9 only;
the default here is 8, whose QoS is a YAML string as in Humble's version 5 (version 9 writes a
list). Whether Humble's ``ros2 bag play`` accepts such a bag is unverified; if it refuses,
delete ``metadata.yaml`` and run ``ros2 bag reindex``.

Messages are built with the Jazzy type store (``sensor_msgs/Image`` and ``CompressedImage``
are the same in Humble; the Image RIHS01 hash equals Jazzy's).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
import os
from pathlib import Path
import re
import shutil
import tempfile
from types import TracebackType
from typing import Any, Literal

import apsw
import numpy as np
from rosbags.interfaces import Connection
from rosbags.rosbag2 import StoragePlugin, Writer, WriterError
from rosbags.serde import SerdeError
from rosbags.typesys import get_typestore, Stores
from rosbags.typesys.stores import ros2_jazzy as jazzy

from segnode.errors import BagWriteError
from segnode.pipeline.imaging import array_to_fields
from segnode.replay.mcap_crc import fill_chunk_crcs

__all__ = [
    'check_topic_name',
    'BagWriter',
    'make_compressed',
    'make_diagnostics',
    'make_header',
    'make_image',
]

_PLUGINS = {'sqlite3': StoragePlugin.SQLITE3, 'mcap': StoragePlugin.MCAP}
TYPESTORE = get_typestore(Stores.ROS2_JAZZY)
Header = jazzy.std_msgs__msg__Header
Image = jazzy.sensor_msgs__msg__Image
CompressedImage = jazzy.sensor_msgs__msg__CompressedImage
DiagnosticArray = jazzy.diagnostic_msgs__msg__DiagnosticArray
DiagnosticStatus = jazzy.diagnostic_msgs__msg__DiagnosticStatus
KeyValue = jazzy.diagnostic_msgs__msg__KeyValue


def make_header(stamp_ns: int, frame_id: str = '') -> Header:
    """A ``std_msgs/Header`` stamped ``stamp_ns`` nanoseconds since the epoch."""
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    stamp = jazzy.builtin_interfaces__msg__Time(sec=sec, nanosec=nanosec)
    return Header(stamp=stamp, frame_id=frame_id)


def make_image(array: np.ndarray, encoding: str, header: Header) -> Image:
    """A ``sensor_msgs/Image`` of ``array`` laid out as ``encoding`` (``array_to_fields``)."""
    fields = array_to_fields(array, encoding)
    return Image(
        header=header,
        height=fields.height,
        width=fields.width,
        encoding=fields.encoding,
        is_bigendian=fields.is_bigendian,
        step=fields.step,
        data=fields.data,
    )


def make_compressed(fmt: str, data: np.ndarray, header: Header) -> CompressedImage:
    """A ``sensor_msgs/CompressedImage`` (``fmt`` e.g. 'rgb8; jpeg compressed bgr8')."""
    flat = np.ascontiguousarray(data, dtype=np.uint8).reshape(-1)
    return CompressedImage(header=header, format=fmt, data=flat)


def make_diagnostics(
    header: Header, name: str, values: Mapping[str, float | int | str], hardware_id: str = ''
) -> DiagnosticArray:
    """A ``diagnostic_msgs/DiagnosticArray`` with one OK status holding ``values`` as strings."""
    pairs = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
    status = DiagnosticStatus(
        level=DiagnosticStatus.OK, name=name, message='', hardware_id=hardware_id, values=pairs
    )
    return DiagnosticArray(header=header, status=[status])


_TOKEN = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')


def check_topic_name(topic: str) -> None:
    """Refuse a name ROS 2 cannot have as an absolute topic.

    Absolute names start with ``/``; each ``/``-separated token is letters, digits and
    underscores, not starting with a digit; no empty token (``//``) and no trailing ``/``.

    Raises:
        BagWriteError: Names the topic and what is wrong with it.
    """
    if not topic.startswith('/'):
        raise BagWriteError(f'topic {topic!r} must be absolute (start with /)')
    tokens = topic[1:].split('/')
    bad = [t for t in tokens if not _TOKEN.match(t)]
    if bad:
        raise BagWriteError(
            f'topic {topic!r} is not a valid ROS 2 name: {bad[0]!r} (letters, digits and '
            'underscores, not starting with a digit, between single slashes)'
        )


class BagWriter:
    """Write a new bag atomically: all of it at ``path``, or nothing.

    Messages go to a bag inside a hidden temporary folder beside ``path``; a clean exit from
    the ``with`` block (or :meth:`finish`) closes it and renames it to ``path``. An exception,
    KeyboardInterrupt included, removes the temporary folder, unless :meth:`finish` was called
    first (e.g. on Ctrl-C, to keep a valid partial bag).

    Args:
        path: The bag folder to create; it must not exist.
        storage: 'mcap' (default) or 'sqlite3'.
        version: Metadata version, 8 (default, QoS as a string as Humble writes it) or 9.

    Raises:
        BagWriteError: ``path`` exists, the storage is unknown, or writing fails (a failed
            write discards the bag).
    """

    def __init__(
        self, path: str | Path, storage: str = 'mcap', *, version: Literal[8, 9] = 8
    ) -> None:
        self.path = Path(path)
        if storage not in _PLUGINS:
            raise BagWriteError(f'unknown bag storage {storage!r} (expected mcap or sqlite3)')
        if self.path.exists() or self.path.is_symlink():
            raise BagWriteError(f'{self.path} already exists; bags are never overwritten')
        self.storage, self.version = storage, version
        self.finished = False
        self._tmp: Path | None = None
        self._writer: Writer | None = None
        self._connections: dict[str, Connection] = {}
        self.messages = 0  # written so far

    def __enter__(self) -> BagWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=f'.{self.path.name}.', dir=self.path.parent))
        writer = Writer(
            self._tmp / self.path.name, version=self.version, storage_plugin=_PLUGINS[self.storage]
        )
        with self._writing():
            writer.open()
        self._writer = writer
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.finish()
        elif not self.finished:
            self._discard()

    @contextmanager
    def _writing(self) -> Iterator[None]:
        try:
            yield
        except (WriterError, SerdeError, OSError, apsw.Error, ValueError, TypeError) as err:
            self._discard()
            raise BagWriteError(f'cannot write bag {self.path}: {err}') from err

    def _open(self) -> Writer:
        if self._writer is None:
            state = 'finished' if self.finished else 'not open (use it in a with block)'
            raise BagWriteError(f'bag writer for {self.path} is {state}')
        return self._writer

    def add_topic(self, topic: str, msgtype: str) -> None:
        """Declare ``topic`` with type ``msgtype`` (again with the same type: no-op).

        Raises:
            BagWriteError: The topic was declared with another type, or the type is unknown.
        """
        known = self._connections.get(topic)
        if known is not None:
            if known.msgtype != msgtype:
                raise BagWriteError(f'{topic} is {known.msgtype}, cannot also write {msgtype}')
            return
        check_topic_name(topic)  # once per topic, not per message
        if msgtype not in TYPESTORE.types:
            raise BagWriteError(f'{topic}: message type {msgtype} is not in the type store')
        writer = self._open()
        with self._writing():
            self._connections[topic] = writer.add_connection(topic, msgtype, typestore=TYPESTORE)

    def write(self, topic: str, log_time_ns: int, msg: Any) -> None:
        """Serialise ``msg`` (a type store instance) onto ``topic``, declaring it if needed."""
        msgtype = str(msg.__msgtype__)
        self.add_topic(topic, msgtype)
        writer = self._open()
        with self._writing():
            writer.write(
                self._connections[topic], int(log_time_ns), TYPESTORE.serialize_cdr(msg, msgtype)
            )
        self.messages += 1

    def finish(self) -> Path:
        """Close the bag and move it to ``path`` (idempotent); returns ``path``."""
        if self.finished:
            return self.path
        writer, tmp = self._open(), self._tmp
        assert tmp is not None
        with self._writing():
            writer.close()
            for storage_file in (tmp / self.path.name).glob('*.mcap'):
                fill_chunk_crcs(storage_file)
            if self.path.exists():
                raise OSError(f'{self.path} appeared while writing')
            os.rename(tmp / self.path.name, self.path)
            tmp.rmdir()
            mask = os.umask(0o022)
            os.umask(mask)
            os.chmod(self.path, 0o777 & ~mask)  # not mkdtemp's 0700
        self._writer, self._tmp, self.finished = None, None, True
        return self.path

    def discard(self) -> None:
        """Drop the bag being written: nothing is left at ``path`` (idempotent)."""
        self._discard()
        self.finished = True

    def _discard(self) -> None:
        writer, tmp = self._writer, self._tmp
        self._writer, self._tmp = None, None
        if writer is not None:
            with suppress(WriterError, OSError, apsw.Error):
                writer.abort()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
