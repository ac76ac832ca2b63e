"""MCAP chunk checksums written by segnode's bag writer (a flipped byte is refused); bag modes."""

from __future__ import annotations

from binascii import crc32
from pathlib import Path
import struct

import numpy as np
import pytest

from segnode.replay.bag_writer import BagWriter, make_header, make_image
from segnode.replay.bags import open_bag
from segnode.replay.mcap_crc import fill_chunk_crcs, MAGIC


def _write(path: Path, frames: int = 3, shape: tuple[int, int] = (32, 48)) -> Path:
    """``frames`` images of ``shape``, frame k filled with the value 40 + k."""
    with BagWriter(path, 'mcap') as bag:
        for k in range(frames):
            image = np.full((*shape, 3), 40 + k, np.uint8)
            bag.write('/cam/image_raw', 1000 + k, make_image(image, 'rgb8', make_header(1000 + k)))
    (mcap,) = path.glob('*.mcap')
    return mcap


def _chunks(data: bytes) -> list[tuple[int, int, bytes]]:
    """(offset of the CRC field, CRC, records) of every chunk."""
    found, at = [], len(MAGIC)
    while at + 9 <= len(data):
        opcode, (length,) = data[at], struct.unpack_from('<Q', data, at + 1)
        if opcode == 0x06:
            start = at + 9
            (crc,) = struct.unpack_from('<I', data, start + 24)
            (size,) = struct.unpack_from('<Q', data, start + 32)
            found.append((start + 24, crc, data[start + 40 : start + 40 + size]))
        if opcode == 0x02:
            break
        at += 9 + length
    return found


def test_the_writer_fills_every_chunk_crc(tmp_path: Path) -> None:
    data = _write(tmp_path / 'bag').read_bytes()
    chunks = _chunks(data)
    assert chunks and all(crc == crc32(records) != 0 for _, crc, records in chunks)


def test_filling_is_idempotent_and_keeps_the_file_size(tmp_path: Path) -> None:
    mcap = _write(tmp_path / 'bag')
    size = mcap.stat().st_size
    assert fill_chunk_crcs(mcap) == 0 and mcap.stat().st_size == size


def _flip_in_chunk(mcap: Path, chunk: int) -> list[int]:
    """Flip one pixel byte inside chunk ``chunk``; the log times of the frames it holds."""
    data = bytearray(mcap.read_bytes())
    offset, _, records = _chunks(bytes(data))[chunk]
    values = [v for v in range(40, 52) if bytes([v]) * 4096 in records]  # its frames' pixels
    data[data.find(bytes([values[0]]) * 64, offset)] ^= 0xFF
    mcap.write_bytes(bytes(data))
    return [1000 + v - 40 for v in values]


def test_a_flipped_byte_costs_only_its_chunk(tmp_path: Path) -> None:
    mcap = _write(tmp_path / 'bag', 12, (256, 512))  # 384 KB frames: about three a chunk
    assert len(_chunks(mcap.read_bytes())) >= 3
    lost = _flip_in_chunk(mcap, 1)
    assert lost
    with open_bag(tmp_path / 'bag') as bag:
        messages = list(bag.messages(['/cam/image_raw']))
    assert [m.log_time_ns for m in messages] == list(range(1000, 1012))  # all, in order
    bad = [m for m in messages if m.msg is None]
    assert [m.log_time_ns for m in bad] == lost
    assert all('damaged MCAP chunk' in m.error and 'CRC' in m.error for m in bad)
    good = [m for m in messages if m.msg is not None]
    assert all(bytes(m.msg.data[:1])[0] == 40 + m.log_time_ns - 1000 for m in good)


def test_not_an_mcap_file(tmp_path: Path) -> None:
    path = tmp_path / 'x.mcap'
    path.write_bytes(b'not mcap')
    with pytest.raises(ValueError, match='is not an MCAP file'):
        fill_chunk_crcs(path)


def test_bags_honour_the_umask(tmp_path: Path) -> None:
    import os

    old = os.umask(0o022)
    try:
        mcap = _write(tmp_path / 'bag')
    finally:
        os.umask(old)
    assert (tmp_path / 'bag').stat().st_mode & 0o777 == 0o755
    assert mcap.stat().st_mode & 0o777 == 0o644
