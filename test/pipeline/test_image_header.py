"""segnode.pipeline.image_header: the codec from the bytes, the size and byte floor from a header.

Pillow (which reads the same headers) is the oracle for the declared sizes; OpenCV's decoder is
never reached by a frame whose header declares more pixels than its bytes can hold.
"""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

import cv2
import hostile_frames
import numpy as np
from PIL import Image
import pytest

from segnode.errors import ImageFormatError
from segnode.pipeline.image_header import JPEG_BLOCKS_PER_BYTE, PNG_MAX_RATIO, read_header
from segnode.pipeline.imaging import compressed_to_array, declared_size


def _bytes(data: Any) -> np.ndarray:
    return np.frombuffer(bytes(data), np.uint8)


def _pillow(image: Image.Image, fmt: str, **kwargs: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kwargs)
    return out.getvalue()


RGB = Image.fromarray(np.random.default_rng(0).integers(0, 256, (37, 53, 3), np.uint8))
BIG_EXIF = Image.Exif()
BIG_EXIF[0x010E] = 'x' * 60_000  # a 60 kB description: an APP1 segment to walk over


@pytest.mark.parametrize(
    ('data', 'codec'),
    [
        (_pillow(RGB, 'jpeg'), 'jpeg'),
        (_pillow(RGB, 'jpeg', progressive=True, optimize=True), 'jpeg'),
        (_pillow(RGB.convert('L'), 'jpeg', quality=1), 'jpeg'),
        (_pillow(RGB, 'jpeg', exif=BIG_EXIF), 'jpeg'),
        (_pillow(RGB, 'png'), 'png'),
        (_pillow(RGB.convert('1'), 'png'), 'png'),
        (_pillow(RGB.quantize(4), 'png'), 'png'),
        (_pillow(RGB.convert('I;16'), 'png'), 'png'),
        (_pillow(RGB.convert('RGBA'), 'png'), 'png'),
    ],
)
def test_the_declared_size_is_the_one_pillow_reads(data: bytes, codec: str) -> None:
    header = read_header(_bytes(data))
    assert (header.codec, header.height, header.width) == (codec, 37, 53)
    header.check_density(len(data))  # a real file is never below its floor
    decoded, _ = compressed_to_array(SimpleNamespace(format='jpeg', data=data))
    assert decoded.shape[:2] == (37, 53)


def test_the_floors() -> None:
    jpeg = read_header(_bytes(hostile_frames.jpeg_claiming(4096, 4096)))
    assert JPEG_BLOCKS_PER_BYTE == 16  # half the physical floor of 1 bit per 8x8 block
    assert jpeg.min_bytes == 4096 * 4096 // 64 // 16
    small = read_header(_bytes(hostile_frames.jpeg_claiming(9, 17)))
    assert small.min_bytes == 1  # 3x2 blocks, rounded up
    png = read_header(_bytes(_pillow(RGB.convert('1'), 'png')))
    assert png.min_bytes == -(-37 * (1 + 7) // PNG_MAX_RATIO)  # 53 bits: 7 bytes a row
    rgba = read_header(_bytes(_pillow(Image.new('RGBA', (4096, 4096)), 'png')))
    assert PNG_MAX_RATIO == 1200  # deflate cannot pass 1032:1
    assert rgba.min_bytes == -(-4096 * (1 + 4096 * 4) // PNG_MAX_RATIO)


@pytest.mark.parametrize(('height', 'width'), [(4096, 4096), (65000, 65000), (1000, 1000)])
def test_a_jpeg_declaring_more_than_its_bytes_hold_is_refused_undecoded(
    height: int, width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = hostile_frames.jpeg_claiming(height, width)
    assert declared_size(SimpleNamespace(format='jpeg', data=data)) == (height, width)
    calls: list[int] = []
    monkeypatch.setattr(cv2, 'imdecode', lambda *a: calls.append(1))
    need = -(-(-(-width // 8) * -(-height // 8)) // 16)  # half a bit per 8x8 block, rounded up
    with pytest.raises(ImageFormatError) as err:
        compressed_to_array(SimpleNamespace(format='jpeg', data=data))
    assert str(err.value) == (
        f'jpeg of {len(data)} bytes declares {width}x{height}: a complete jpeg of that size '
        f'needs at least {need} bytes'
    )
    assert not calls


def test_a_png_declaring_more_than_deflate_can_hold_is_refused() -> None:
    data = bytearray(_pillow(Image.new('L', (64, 64)), 'png'))
    data[16:24] = (30000).to_bytes(4, 'big') * 2  # IHDR width, height
    with pytest.raises(
        ImageFormatError, match=r'png of \d+ bytes declares 30000x30000: .* 750025'
    ):
        compressed_to_array(SimpleNamespace(format='png', data=bytes(data)))


def test_flat_frames_that_compress_best_are_above_the_floors() -> None:
    """All-black frames at the settings that shrink them most (bench/compressed_density.py)."""
    black = np.zeros((1024, 2048, 3), np.uint8)
    jpeg_params = [cv2.IMWRITE_JPEG_QUALITY, 1, cv2.IMWRITE_JPEG_OPTIMIZE, 1]
    for params in (jpeg_params, [*jpeg_params, cv2.IMWRITE_JPEG_PROGRESSIVE, 1]):
        for image in (black, black[..., 0]):
            ok, data = cv2.imencode('.jpg', image, params)
            assert ok
            frame, _ = compressed_to_array(SimpleNamespace(format='jpeg', data=data))
            assert frame.shape[:2] == (1024, 2048)
    for image, params in (
        (black[..., 0], [cv2.IMWRITE_PNG_COMPRESSION, 9, cv2.IMWRITE_PNG_BILEVEL, 1]),
        (black, [cv2.IMWRITE_PNG_COMPRESSION, 9]),
    ):
        ok, data = cv2.imencode('.png', image, params)
        assert ok
        frame, _ = compressed_to_array(SimpleNamespace(format='png', data=data))
        assert frame.shape[:2] == (1024, 2048)


def test_arithmetic_coded_jpeg_is_refused_by_name() -> None:
    data = bytearray(hostile_frames.jpeg_claiming(16, 16))
    data[data.index(b'\xff\xc0') + 1] = 0xC9
    with pytest.raises(ImageFormatError, match='jpeg coding SOF9 .*arithmetic.* not supported'):
        read_header(_bytes(data))


def test_garbage_and_fill_bytes_before_the_frame_header_are_skipped_as_libjpeg_does() -> None:
    data = bytearray(hostile_frames.jpeg_claiming(16, 16))
    sof = data.index(b'\xff\xc0')
    data[sof:sof] = b'\x00\x12\xff\x00' + b'\xff' * 10_000  # garbage, then fill bytes
    assert declared_size(SimpleNamespace(format='jpeg', data=bytes(data))) == (16, 16)
    endless = b'\xff\xd8' + b'\xff\xfe\x00\x04ab' * 200_000  # comments, never a frame header
    with pytest.raises(ImageFormatError, match='jpeg of 1200002 bytes has no frame header'):
        read_header(_bytes(endless))
