"""What a CompressedImage's bytes are, read from the bytes alone (never from its ``format``).

cv_bridge and image_transport decode a CompressedImage by its content, whatever its ``format``
string says; segnode does too. The container comes from the magic bytes at the start of the
data; JPEG and PNG are decoded, anything else is refused with one reason naming what the bytes
are. The size is read from the JPEG frame header (SOF) or the PNG IHDR chunk before any pixel
is decoded, together with the fewest bytes a complete image of that size can physically take:

- JPEG (Huffman coded, baseline, extended, progressive or lossless): every 8x8 block of the
  full-resolution component carries at least a DC difference, and the shortest Huffman code is
  1 bit, so a complete JPEG of W x H holds at least ``ceil(W/8) * ceil(H/8) / 8`` bytes (about 2
  bytes per thousand pixels). A JPEG with fewer bytes is incomplete or lies about its size:
  libjpeg fills what is missing with grey, so a 723-byte file claiming 4096x4096 would cost a
  full 4096x4096 decode and inference. Arithmetic-coded and hierarchical JPEGs have no such
  floor and are refused (image_transport never writes them).
- PNG: deflate codes at most 258 bytes in 2 bits (a length and a distance code of 1 bit each),
  so it cannot compress more than 1032:1; a PNG of W x H needs at least ``raw / 1032`` bytes,
  ``raw`` being its filtered scanlines, ``H * (1 + ceil(W * channels * depth / 8))``.

segnode refuses a file only below these floors with a safety margin (half the JPEG floor, PNG at
1200:1): the legitimate files that compress best (bench/compressed_density.py,
bench/results/compressed_density.json: all-black, flat-colour, noise and CamVid frames, JPEG
quality 1 to 100 with and without optimised or progressive coding, PNG compression 0 to 9, grey
and colour) stay above them (docs/node.md, "Bad frames").
"""

from __future__ import annotations

from dataclasses import dataclass
import re
import struct

import numpy as np

from segnode.errors import clip, ImageFormatError

__all__ = [
    'DEFLATE_MAX_RATIO',
    'ImageHeader',
    'JPEG_BLOCKS_PER_BYTE',
    'JPEG_FLOOR_BLOCKS_PER_BYTE',
    'PNG_MAX_RATIO',
    'container',
    'read_header',
]

# The physical floors. Deflate codes at most 258 bytes in 2 bits (RFC 1951: a length code and a
# distance code of 1 bit each), 1032:1. A complete Huffman-coded JPEG spends at least 1 bit (a DC
# difference) on each 8x8 block of its full-resolution component: 8 blocks per byte.
DEFLATE_MAX_RATIO = 1032
JPEG_FLOOR_BLOCKS_PER_BYTE = 8
# What segnode refuses below: the floors with a safety margin. The legitimate files that compress
# best (bench/compressed_density.py, 4,280 files from OpenCV 5.0 and Pillow 13, flat frames up to
# 4096x4096) measured 2.005x the JPEG floor (a flat 4096x4096 frame, grey, quality 1, optimised
# Huffman tables: 2 bits a block, 3.9 bytes per thousand pixels) and 1.0057x the PNG floor (all
# black 4096x4096, compression 9: deflate at its limit). JPEG: half the floor, so those files
# are 4.0x the threshold; PNG: 1200:1, 16 % past deflate's limit, those files 1.17x it.
JPEG_BLOCKS_PER_BYTE = 2 * JPEG_FLOOR_BLOCKS_PER_BYTE
PNG_MAX_RATIO = 1200

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
JPEG_MAGIC = b'\xff\xd8\xff'
# Other containers, named in the reason when a frame holds one: (magic, offset, name).
_OTHERS = (
    (b'GIF8', 0, 'a GIF image'),
    (b'BM', 0, 'a BMP image'),
    (b'II*\x00', 0, 'a TIFF image'),
    (b'MM\x00*', 0, 'a TIFF image'),
    (b'WEBP', 8, 'a WebP image'),
    (b'\x00\x00\x00\x0cjP  ', 0, 'a JPEG 2000 image'),
    (b'\xff\x4f\xff\x51', 0, 'a JPEG 2000 codestream'),
    (b'\x00\x00\x00\x0cJXL ', 0, 'a JPEG XL image'),
    (b'\xff\x0a', 0, 'a JPEG XL codestream'),
    (b'ftypavif', 4, 'an AVIF image'),
    (b'ftypheic', 4, 'a HEIC image'),
)
# PNG colour type -> channels, and the bit depths it allows.
_PNG_COLOUR = {
    0: (1, (1, 2, 4, 8, 16)),
    2: (3, (8, 16)),
    3: (1, (1, 2, 4, 8)),
    4: (2, (8, 16)),
    6: (4, (8, 16)),
}
# JPEG frame markers: SOF0..3 are Huffman coded (decoded), the rest are refused.
_SOF_HUFFMAN = {0xC0: 'baseline', 0xC1: 'extended', 0xC2: 'progressive', 0xC3: 'lossless'}
_SOF_OTHER = {0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
# Markers without a length field (SOI, TEM, RST0..7).
_STANDALONE = {0xD8, 0x01, *range(0xD0, 0xD8)}
# A marker: 0xFF (after any garbage and fill bytes) and a byte that is neither 0xFF nor 0x00.
_MARKER = re.compile(rb'\xff[\x01-\xfe]')
# Segments walked at most before the frame header (a camera JPEG has about ten).
MAX_SEGMENTS = 1024


@dataclass(frozen=True)
class ImageHeader:
    """What a compressed image's header declares."""

    codec: str  # 'jpeg' or 'png'
    height: int
    width: int
    min_bytes: int  # the fewest bytes accepted: below them no complete image has this size

    def check_density(self, size: int) -> None:
        """Refuse ``size`` bytes that cannot hold a complete image of the declared size.

        Raises:
            ImageFormatError: Fewer bytes than the codec's floor, with the figures.
        """
        if size < self.min_bytes:
            raise ImageFormatError(
                f'{self.codec} of {size} bytes declares {self.width}x{self.height}: a complete '
                f'{self.codec} of that size needs at least {self.min_bytes} bytes'
            )


def container(data: bytes, fmt: object = '') -> str:
    """'jpeg' or 'png' from the magic bytes at the start of ``data``.

    Args:
        data: The first bytes of the image (16 are enough).
        fmt: The message's ``format``, quoted (clipped) in the reason only.

    Raises:
        ImageFormatError: Anything else, naming what the bytes are.
    """
    if data.startswith(JPEG_MAGIC):
        return 'jpeg'
    if data.startswith(PNG_MAGIC):
        return 'png'
    said = f' (format {clip(fmt, 40)!r})' if fmt else ''
    if not data:
        raise ImageFormatError(f'CompressedImage has no data{said}')
    for magic, offset, name in _OTHERS:
        if data[offset : offset + len(magic)] == magic:
            raise ImageFormatError(
                f'CompressedImage holds {name}{said}: segnode decodes JPEG and PNG only'
            )
    start = ' '.join(f'{b:02x}' for b in data[:8]) + (' ...' if len(data) > 8 else '')
    raise ImageFormatError(
        f'CompressedImage is not an image{said}: bytes start {start} (neither JPEG nor PNG)'
    )


def read_header(buf: np.ndarray, fmt: object = '') -> ImageHeader:
    """The codec, declared size and byte floor of a JPEG or PNG, without decoding pixels.

    Args:
        buf: The data as a flat uint8 array.
        fmt: The message's ``format`` (only quoted in reasons; the codec comes from the bytes).

    Raises:
        ImageFormatError: Not a JPEG or PNG, or a header that cannot be read.
    """
    codec = container(buf[:16].tobytes(), fmt)
    if codec == 'png':
        return _png_header(buf[:33].tobytes(), buf.size)
    return _jpeg_header(buf)


def _png_header(head: bytes, size: int) -> ImageHeader:
    if len(head) < 33 or head[12:16] != b'IHDR':
        raise ImageFormatError(f'png of {size} bytes has no IHDR header')
    width, height, depth, colour = struct.unpack('>IIBB', head[16:26])
    channels, depths = _PNG_COLOUR.get(colour, (0, ()))
    if depth not in depths:
        raise ImageFormatError(f'png header has colour type {colour} at bit depth {depth}')
    raw = height * (1 + (width * channels * depth + 7) // 8)  # filtered scanlines
    return ImageHeader('png', height, width, -(-raw // PNG_MAX_RATIO))


def _jpeg_header(buf: np.ndarray) -> ImageHeader:
    """Walk the JPEG's marker segments up to its frame header (SOF), as libjpeg does.

    Garbage between segments and fill bytes are skipped by a regular expression (C speed), and
    at most ``MAX_SEGMENTS`` segments are walked: a header that never ends costs no more than a
    pass over the bytes.
    """
    data, pos, size = buf.data, 2, buf.size  # a zero-copy memoryview
    for _ in range(MAX_SEGMENTS):
        found = _MARKER.search(data, pos)
        if found is None:
            break
        pos, marker = found.end() - 2, data[found.end() - 1]
        if marker in _STANDALONE:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # EOI or SOS before any frame header
            break
        if marker in _SOF_OTHER:
            raise ImageFormatError(
                f'jpeg coding SOF{marker - 0xC0} (arithmetic or hierarchical) is not supported'
            )
        if pos + 9 > size:
            break
        if marker in _SOF_HUFFMAN:
            height, width = struct.unpack_from('>HH', data, pos + 5)
            blocks = -(-width // 8) * -(-height // 8)
            return ImageHeader('jpeg', height, width, -(-blocks // JPEG_BLOCKS_PER_BYTE))
        (length,) = struct.unpack_from('>H', data, pos + 2)
        pos += 2 + max(length, 2)
    raise ImageFormatError(f'jpeg of {size} bytes has no frame header (SOF)')
