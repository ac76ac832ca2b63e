"""Chunk checksums for the MCAP files segnode writes.

rosbags writes MCAP chunks with ``uncompressed_crc`` 0, which the MCAP format defines as "not
computed", so a flipped byte inside a recorded image passes unnoticed. After the writer has
closed a file, :func:`fill_chunk_crcs` computes the CRC-32 of every uncompressed chunk's
records and writes it into the chunk's header in place (the file's length and every offset
stay as they are). Readers that check chunk CRCs where present (rosbags does) then refuse a
corrupted chunk instead of decoding wrong pixels.

MCAP layout relied on (mcap.dev specification): an 8-byte magic, then records of an opcode
(u8) and a content length (u64, little-endian); a Chunk record (opcode 0x06) starts with
message start and end times (u64 each), the uncompressed size (u64), the uncompressed CRC
(u32), the compression name (u32 length and bytes) and the records' length (u64).
"""

from __future__ import annotations

from binascii import crc32
from pathlib import Path
import struct

__all__ = ['fill_chunk_crcs']

MAGIC = b'\x89MCAP0\r\n'
CHUNK = 0x06
FOOTER = 0x02


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
