"""MCAP chunk checksums written by segnode's bag writer (a flipped byte is refused); bag modes."""

from __future__ import annotations

from binascii import crc32
from pathlib import Path
import struct

import numpy as np
import pytest

from segnode.errors import BagReadError
from segnode.replay.bag_writer import BagWriter, make_header, make_image
from segnode.replay.bags import open_bag
from segnode.replay.mcap_crc import fill_chunk_crcs, MAGIC


def _write(path: Path, frames: int = 3) -> Path:
    with BagWriter(path, 'mcap') as bag:
        for k in range(frames):
            image = np.full((32, 48, 3), 40 + k, np.uint8)
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


def test_a_flipped_byte_in_the_image_data_is_refused(tmp_path: Path) -> None:
    mcap = _write(tmp_path / 'bag')
    data = bytearray(mcap.read_bytes())
    (offset, _, records), *_ = _chunks(bytes(data))
    pixel = data.find(bytes([41]) * 64, offset)  # inside the second frame's pixels
    assert pixel > 0
    data[pixel] ^= 0xFF
    mcap.write_bytes(bytes(data))
    with pytest.raises(BagReadError, match='(?i)checksum'):
        with open_bag(tmp_path / 'bag') as bag:
            list(bag.messages(['/cam/image_raw']))


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
