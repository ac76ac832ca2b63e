"""Chunk checksums of MCAP files: filled in for the files segnode writes, checked when reading.

rosbags writes MCAP chunks with ``uncompressed_crc`` 0, which the MCAP format defines as "not
computed", so a flipped byte inside a recorded image passes unnoticed. After the writer has
closed a file, :func:`fill_chunk_crcs` computes the CRC-32 of every uncompressed chunk's
records and writes it into the chunk's header in place (the file's length and every offset
stay as they are). Readers that check chunk CRCs where present (rosbags does) then refuse a
corrupted chunk instead of decoding wrong pixels. rosbags refuses it by ending the whole read;
:func:`damaged_chunks` finds such chunks first, with the messages their index lists (the
message index records follow a chunk, outside it), so that a reader can skip them alone.

MCAP layout relied on (mcap.dev specification): an 8-byte magic, then records of an opcode
(u8) and a content length (u64, little-endian); a Chunk record (opcode 0x06) starts with
message start and end times (u64 each), the uncompressed size (u64), the uncompressed CRC
(u32), the compression name (u32 length and bytes) and the records' length (u64).
"""

from __future__ import annotations

from binascii import crc32
import mmap
from pathlib import Path
import struct
from typing import NamedTuple

__all__ = ['DamagedChunk', 'damaged_chunks', 'fill_chunk_crcs']

MAGIC = b'\x89MCAP0\r\n'
CHUNK = 0x06
FOOTER = 0x02
CHANNEL = 0x04
MESSAGE_INDEX = 0x07


class DamagedChunk(NamedTuple):
    """A chunk whose records do not match its CRC, and what its message index lists."""

    file: str  # the MCAP file's name
    offset: int  # of the chunk record in the file
    start_ns: int  # log time of its first and last message
    end_ns: int
    messages: tuple[tuple[str, int], ...]  # (topic, log time) of each message, by its index


def _records(content: bytes) -> bytes | None:
    """The records of an uncompressed chunk's content; None for a compressed chunk.

    segnode's writer never compresses chunks; a compressed one keeps CRC 0 ("not computed").
    """
    (name_length,) = struct.unpack_from('<I', content, 28)
    if name_length:
        return None
    (size,) = struct.unpack_from('<Q', content, 32)
    return content[40 : 40 + size]


def fill_chunk_crcs(path: Path) -> int:
    """Write the CRC of every chunk of ``path`` whose CRC is 0; returns how many were filled.

    Raises:
        ValueError: ``path`` is not an MCAP file, or a record runs past its end.
    """
    with open(path, 'r+b') as f:
        data = f.read()
        if not data.startswith(MAGIC):
            raise ValueError(f'{path} is not an MCAP file')
        filled, at = 0, len(MAGIC)
        while at + 9 <= len(data):
            opcode = data[at]
            (length,) = struct.unpack_from('<Q', data, at + 1)
            start, end = at + 9, at + 9 + length
            if end > len(data):
                raise ValueError(f'{path}: record at byte {at} runs past the end of the file')
            if opcode == CHUNK:
                (crc,) = struct.unpack_from('<I', data, start + 24)
                records = _records(data[start:end])
                if crc == 0 and records is not None:
                    f.seek(start + 24)
                    f.write(struct.pack('<I', crc32(records)))
                    filled += 1
            if opcode == FOOTER:
                break
            at = end
    return filled


def _string(data: bytes | mmap.mmap, at: int) -> str:
    (length,) = struct.unpack_from('<I', data, at)
    return bytes(data[at + 4 : at + 4 + length]).decode('utf-8', 'replace')


def damaged_chunks(path: Path) -> list[DamagedChunk]:
    """The uncompressed chunks of ``path`` whose recorded CRC does not match their records.

    Compressed chunks, chunks with CRC 0 ("not computed") and a file that is not a complete
    MCAP (no valid record structure) are left to the reader. Channel ids are mapped to topics
    through the Channel records outside chunks (the summary).
    """
    with open(path, 'rb') as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        if data[: len(MAGIC)] != MAGIC:
            return []
        bad: list[tuple[int, int, int, list[tuple[int, int]]]] = []
        topics: dict[int, str] = {}
        at = len(MAGIC)
        current: tuple[int, int, int, list[tuple[int, int]]] | None = None
        while at + 9 <= len(data):
            opcode = data[at]
            (length,) = struct.unpack_from('<Q', data, at + 1)
            start, end = at + 9, at + 9 + length
            if end > len(data):
                break
            if opcode != MESSAGE_INDEX:
                current = None
            if opcode == CHUNK:
                start_ns, end_ns = struct.unpack_from('<QQ', data, start)
                (crc,) = struct.unpack_from('<I', data, start + 24)
                records = _records(bytes(data[start:end])) if crc else None
                if records is not None and crc32(records) != crc:
                    current = (at, start_ns, end_ns, [])
                    bad.append(current)
            elif opcode == MESSAGE_INDEX and current is not None:
                channel, size = struct.unpack_from('<HI', data, start)
                for k in range(size // 16):
                    (log_time,) = struct.unpack_from('<Q', data, start + 6 + 16 * k)
                    current[3].append((channel, log_time))
            elif opcode == CHANNEL:
                (channel,) = struct.unpack_from('<H', data, start)
                topics[channel] = _string(data, start + 4)
            elif opcode == FOOTER:
                break
            at = end
    return [
        DamagedChunk(
            path.name, offset, t0, t1, tuple(sorted((topics.get(c, ''), t) for c, t in index))
        )
        for offset, t0, t1, index in bad
    ]
