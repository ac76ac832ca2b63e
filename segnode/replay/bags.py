"""Reading rosbag2 bags with rosbags, without ROS (docs/replay.md, "Input bags").

Reading: :func:`open_bag` takes a bag folder, its ``metadata.yaml`` or one storage file
(``.db3`` sqlite3 or ``.mcap``) of any metadata version rosbags reads (4 to 9; Humble writes
5, later distros up to 9). When ``metadata.yaml`` and the storage disagree, the storage wins:
rosbags matches the topics of ``metadata.yaml`` to the connections of the storage on topic,
type, serialization format and offered QoS, so a QoS edited in ``metadata.yaml`` alone makes a
topic yield no message although its ``message_count`` says otherwise. :class:`BagReader` detects
that before iterating (:func:`_disagreements`), reads the storage files directly and says so
in ``BagInfo.notes``. zstd-compressed bags are read through ``metadata.yaml`` only (their
storage files cannot be opened on their own), so they are not cross-checked.

Writing is :mod:`segnode.replay.bag_writer`. Messages are decoded with the Jazzy type store
(``sensor_msgs/Image`` and ``CompressedImage`` are the same in Humble).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
import heapq
from pathlib import Path, PurePath
from types import TracebackType
from typing import Any

from rosbags.interfaces import Connection
from rosbags.rosbag2 import Reader
from rosbags.typesys import get_typestore, Stores

from segnode.config import read_yaml, short_repr
from segnode.errors import BagReadError, one_line
from segnode.files import file_sha256
from segnode.replay.bag_errors import BAG_ERRORS, LIBRARY_ERRORS, reading
from segnode.replay.mcap_crc import damaged_chunks, DamagedChunk

__all__ = [
    'IMAGE_TYPES',
    'BagInfo',
    'BagMessage',
    'BagReader',
    'TopicInfo',
    'open_bag',
]

IMAGE_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')
STORAGES = {'.db3': 'sqlite3', '.mcap': 'mcap'}
TYPESTORE = get_typestore(Stores.ROS2_JAZZY)


@dataclass(frozen=True)
class TopicInfo:
    """One topic of a bag: name, message type and number of messages."""

    topic: str
    msgtype: str
    count: int


@dataclass(frozen=True)
class BagInfo:
    """What a bag holds.

    Attributes:
        path: The path given to :func:`open_bag`.
        storage: 'sqlite3' or 'mcap'.
        version: Metadata version (0 when read without ``metadata.yaml``).
        start_ns: Log time of the first message (0 for an empty bag).
        duration_ns: Last minus first log time.
        topics: Topic name -> :class:`TopicInfo`, counts as the messages will be read.
        notes: How the bag was read when not simply through ``metadata.yaml``.
    """

    path: Path
    storage: str
    version: int
    start_ns: int
    duration_ns: int
    topics: dict[str, TopicInfo]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class BagMessage:
    """One deserialised message (a rosbags type store instance) and its log time.

    ``msg`` is None and ``error`` says why when the message's bytes cannot be deserialised
    (a record cut short by a crashed recorder, flipped bytes): one bad message does not end
    the read.
    """

    topic: str
    msgtype: str
    log_time_ns: int
    msg: Any
    error: str = ''


def open_bag(path: str | Path) -> BagReader:
    """Open a bag folder, its ``metadata.yaml`` or a single ``.db3``/``.mcap`` file.

    Use as a context manager (``with open_bag(path) as bag:``) or call ``close()``.

    Raises:
        BagReadError: The path does not exist, holds no bag, or the bag cannot be read.
    """
    return BagReader(path)


def _key(conn: Connection) -> tuple[str, str, object]:
    return conn.topic, conn.msgtype, conn.ext


def _matches(meta: Connection, stored: Connection) -> bool:
    """Whether rosbags' directory reader yields ``stored``'s messages for ``meta``."""
    digests = meta.digest, stored.digest
    return _key(meta) == _key(stored) and (not all(digests) or digests[0] == digests[1])


def _disagreements(meta: Sequence[Connection], stored: Sequence[Connection]) -> list[str]:
    """Topics whose messages a read through ``metadata.yaml`` would not yield exactly.

    Compares, per topic, the metadata's ``message_count`` with the messages the storage holds
    and with those that match a metadata connection (the rest are silently skipped). All three
    counts come from indexes, so nothing is read twice.
    """
    declared: dict[str, int] = defaultdict(int)
    held: dict[str, int] = defaultdict(int)
    reachable: dict[str, int] = defaultdict(int)
    for conn in meta:
        declared[conn.topic] += conn.msgcount
    for conn in stored:
        held[conn.topic] += conn.msgcount
        if any(_matches(m, conn) for m in meta):
            reachable[conn.topic] += conn.msgcount
    topics = sorted(set(declared) | set(held))
    return [
        f'{t} (metadata {declared[t]}, storage {held[t]}, matched {reachable[t]})'
        for t in topics
        if not declared[t] == held[t] == reachable[t]
    ]


def _topics(readers: Sequence[Reader]) -> dict[str, TopicInfo]:
    counts: dict[str, int] = defaultdict(int)
    types: dict[str, str] = {}
    for reader in readers:
        for conn in reader.connections:
            counts[conn.topic] += conn.msgcount
            types.setdefault(conn.topic, conn.msgtype)
    return {t: TopicInfo(t, types[t], counts[t]) for t in sorted(counts)}


def _locate(path: Path) -> tuple[Path | None, list[Path], list[str]]:
    """(folder with metadata.yaml or None, storage files to read directly, notes)."""
    if not path.exists():
        raise BagReadError(f'bag {path} does not exist')
    if path.is_file():
        if path.name == 'metadata.yaml':
            return path.parent, [], []
        if path.suffix in STORAGES:
            return None, [path], []
        raise BagReadError(f'{path} is not a bag folder, a metadata.yaml, a .db3 or a .mcap')
    if (path / 'metadata.yaml').is_file():
        return path, [], []
    files = sorted(p for p in path.iterdir() if p.suffix in STORAGES and p.is_file())
    if not files:
        raise BagReadError(f'{path} is not a bag: no metadata.yaml and no .db3 or .mcap file')
    if len({p.suffix for p in files}) > 1:
        raise BagReadError(f'{path} has no metadata.yaml and mixes .db3 and .mcap files')
    _refuse_copies(files)
    note = f'{path} has no metadata.yaml: read {len(files)} storage file(s) directly'
    return None, files, [note]


def _refuse_copies(files: Sequence[Path]) -> None:
    """Two storage files with the same bytes would replay (and score) every frame twice.

    Raises:
        BagReadError: Names the identical pair.
    """
    by_size: dict[int, list[Path]] = defaultdict(list)
    for file in files:
        by_size[file.stat().st_size].append(file)
    for same_size in by_size.values():
        if len(same_size) < 2:
            continue
        seen: dict[str, Path] = {}
        for file in same_size:
            digest = file_sha256(file)
            if digest in seen:
                raise BagReadError(
                    f'{file.name} and {seen[digest].name} in {file.parent} are identical copies; '
                    'move one away (every frame would be replayed twice)'
                )
            seen[digest] = file


class BagReader:
    """An open bag: :attr:`info`, :meth:`image_topics` and :meth:`messages`.

    Args:
        path: Bag folder, its ``metadata.yaml``, or a single ``.db3`` or ``.mcap`` file.

    Raises:
        BagReadError: See :func:`open_bag`.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._stack = ExitStack()
        try:
            self._readers, self.info = self._open()
            self._damaged: dict[Path, list[DamagedChunk]] = {}
        except BaseException:
            self._stack.close()
            raise

    def _reader(self, path: Path, stack: ExitStack | None = None) -> Reader:
        with reading(path, 'open bag'):
            reader = Reader(path)
            reader.open()
        (stack or self._stack).callback(reader.close)
        for conn in reader.connections:  # rosbags takes them from the file as they are
            if not (isinstance(conn.topic, str) and isinstance(conn.msgtype, str)):
                raise BagReadError(
                    f'cannot open bag {path}: a topic name or type is not a string '
                    f'({short_repr(conn.topic)}: {short_repr(conn.msgtype)}) '
                    '(truncated or corrupt?)'
                )
        return reader

    def _open(self) -> tuple[list[Reader], BagInfo]:
        folder, files, notes = _locate(self.path)
        version = 0
        if folder is not None:
            with reading(folder / 'metadata.yaml', 'read', parsing=True):
                meta = read_yaml(folder / 'metadata.yaml', 'bag metadata')
                if not isinstance(meta, dict) or 'rosbag2_bagfile_information' not in meta:
                    raise BagReadError(
                        f'{folder / "metadata.yaml"} is not rosbag2 metadata (no '
                        'rosbag2_bagfile_information mapping; an empty file?); move it away to '
                        'read the storage files directly'
                    )
                meta = meta['rosbag2_bagfile_information']
                version, storage = int(meta['version']), str(meta['storage_identifier'])
                files = [folder / PurePath(name).name for name in meta['relative_file_paths']]
            if missing := [p.name for p in files if not p.is_file()]:
                raise BagReadError(f'{folder}: storage files in metadata.yaml missing: {missing}')
            readers = [self._reader(folder)]
            compressed = str(meta.get('compression_mode') or 'none').lower() != 'none'
            if not compressed:  # compressed storage files cannot be opened directly
                with reading(folder / 'metadata.yaml', 'read'), ExitStack() as stack:
                    direct = [self._reader(p, stack) for p in files]
                    stored = [c for r in direct for c in r.connections]
                    if wrong := _disagreements(readers[0].connections, stored):
                        readers = direct
                        self._stack.enter_context(stack.pop_all())
                        notes.append(
                            f'metadata.yaml disagrees with the storage for {", ".join(wrong)}: '
                            'read the storage files directly'
                        )
        else:
            readers = [self._reader(p) for p in files]
            storage = STORAGES[files[0].suffix]
        with reading(self.path, 'read'):
            filled = [r for r in readers if r.message_count]
            start = min((r.start_time for r in filled), default=0)
            end = max((r.end_time - 1 for r in filled), default=0)
        topics = _topics(readers)
        # Which storage files each reader reads (one reader of the folder, or one per file).
        self._files = [files] if len(readers) == 1 and folder is not None else [[p] for p in files]
        return readers, BagInfo(self.path, storage, version, start, end - start, topics, (*notes,))

    def close(self) -> None:
        """Close the storage files."""
        self._stack.close()

    def __enter__(self) -> BagReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def image_topics(self, requested: Sequence[str] | None = None) -> list[TopicInfo]:
        """The Image and CompressedImage topics, sorted, or the ``requested`` ones in order.

        Raises:
            BagReadError: The bag has no image topic, or a requested topic is not one of them.
        """
        images = {t.topic: t for t in self.info.topics.values() if t.msgtype in IMAGE_TYPES}
        if not images:
            found = ', '.join(f'{t.topic} ({t.msgtype})' for t in self.info.topics.values())
            raise BagReadError(
                f'{self.path} has no sensor_msgs/Image or CompressedImage topic; '
                f'topics: {found or "none"}'
            )
        if requested is None:
            return [images[name] for name in sorted(images)]
        for name in requested:
            if name not in images:
                raise BagReadError(
                    f'{self.path} has no image topic {name!r}; image topics: '
                    f'{", ".join(sorted(images))}'
                )
        return [images[name] for name in dict.fromkeys(requested)]

    def messages(self, topics: Sequence[str]) -> Iterator[BagMessage]:
        """The messages of ``topics``, deserialised, in log-time order across topics.

        Raises:
            BagReadError: A topic is not in the bag, its type is unknown to the Jazzy type
                store, or the storage is truncated or corrupt.
        """
        wanted = set(topics)
        for name in topics:
            info = self.info.topics.get(name)
            if info is None:
                raise BagReadError(f'{self.path} has no topic {name!r}')
            if info.msgtype not in TYPESTORE.types:
                raise BagReadError(f'{name}: message type {info.msgtype} cannot be decoded')
        return self._messages(wanted)

    def _messages(self, wanted: set[str]) -> Iterator[BagMessage]:
        streams: list[Iterator[tuple[Any, int, Any]]] = []
        for reader, files in zip(self._readers, self._files):
            conns = [c for c in reader.connections if c.topic in wanted]
            if not conns:  # rosbags reads every connection when given none
                continue
            damaged = [c for f in files for c in self._damaged_chunks(f)]
            if damaged:
                streams.append(_around(reader, conns, damaged))
                streams.append(_lost(damaged, wanted))
            else:
                streams.append(reader.messages(conns))
        with reading(self.path, 'read messages from'):
            for conn, log_time, raw in heapq.merge(*streams, key=lambda m: m[1]):
                if isinstance(conn, str):  # a message of a damaged chunk: raw is the reason
                    yield BagMessage(conn, self.info.topics[conn].msgtype, log_time, None, raw)
                    continue
                try:
                    msg = TYPESTORE.deserialize_cdr(raw, conn.msgtype)
                except (*BAG_ERRORS, *LIBRARY_ERRORS) as err:  # one library call
                    reason = one_line(err)
                    error = f'{conn.msgtype} at log time {log_time} cannot be read: {reason}'
                    yield BagMessage(conn.topic, conn.msgtype, log_time, None, error)
                    continue
                yield BagMessage(conn.topic, conn.msgtype, log_time, msg)

    def _damaged_chunks(self, path: Path) -> list[DamagedChunk]:
        """The chunks of an MCAP file that fail their CRC (checked once per file)."""
        if path.suffix != '.mcap':
            return []
        if path not in self._damaged:
            with reading(path, 'check the chunks of'):
                self._damaged[path] = damaged_chunks(path)
        return self._damaged[path]


def _around(
    reader: Reader, conns: Sequence[Connection], damaged: Sequence[DamagedChunk]
) -> Iterator[tuple[Any, int, Any]]:
    """The reader's messages outside the log-time spans of damaged chunks, in time order."""
    start: int | None = None
    for lo, hi in sorted((c.start_ns, c.end_ns) for c in damaged):
        if start is None or lo > start:
            yield from reader.messages(conns, start=start, stop=lo)
        start = hi + 1 if start is None else max(start, hi + 1)
    yield from reader.messages(conns, start=start)


def _lost(damaged: Sequence[DamagedChunk], wanted: set[str]) -> Iterator[tuple[str, int, str]]:
    """``(topic, log time, reason)`` for each wanted message a damaged chunk's index lists."""
    lost = [
        (log_time, topic, f'{chunk.file} byte {chunk.offset}')
        for chunk in damaged
        for topic, log_time in chunk.messages
        if topic in wanted
    ]
    for log_time, topic, where in sorted(lost):
        yield (
            topic,
            log_time,
            f'in a damaged MCAP chunk ({where}: its data fails its CRC): skipped',
        )
