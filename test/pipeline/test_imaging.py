"""segnode.pipeline.imaging against rosbags' real message types and CDR (rosbags-image: oracle)."""

from __future__ import annotations

import array
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
from numpy.testing import assert_array_equal
import pytest
from rosbags.image import message_to_cvimage
from rosbags.typesys import get_typestore, Stores

from segnode.errors import ImageFormatError
from segnode.pipeline.imaging import (
    array_to_fields,
    colorize,
    compressed_to_array,
    declared_size,
    encode_compressed,
    ENCODINGS,
    image_to_array,
    ImageFields,
    is_compressed,
    palette_lut,
    stamp_ns,
    to_rgb_frame,
)

STORES = {'humble': get_typestore(Stores.ROS2_HUMBLE), 'jazzy': get_typestore(Stores.ROS2_JAZZY)}
IMAGE_RIHS01 = 'd31d41a9a4c4bc8eae9be757b0beed306564f7526c88ea6a4588fb9582527d47'
# serialize_cdr of a 2x3 rgb8 Image, data 0..17, stamp 1700000000.123456789, frame_id 'cam'.
GOLDEN_CDR = bytes.fromhex(
    '0001000000f1536515cd5b070400000063616d000200000003000000050000007267623800000000'
    '0900000012000000000102030405060708090a0b0c0d0e0f1011'
)
SIZES = [(5, 7), (1, 1), (2, 3)]
GOOD = {'height': 5, 'width': 7, 'encoding': 'rgb8', 'is_bigendian': 0, 'step': 21}


@pytest.fixture(params=sorted(STORES))
def ts(request: pytest.FixtureRequest) -> Any:
    return STORES[request.param]


def header(ts: Any, sec: int = 1700000000, nanosec: int = 123456789) -> Any:
    time = ts.types['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec)
    return ts.types['std_msgs/msg/Header'](stamp=time, frame_id='cam')


def image_msg(ts: Any, encoding: str, step: int, data: Any, big: int = 0) -> Any:
    fields = {'height': 5, 'width': 7, 'encoding': encoding, 'step': step, 'data': data}
    return ts.types['sensor_msgs/msg/Image'](header=header(ts), is_bigendian=big, **fields)


def fields_msg(ts: Any, fields: ImageFields) -> Any:
    return ts.types['sensor_msgs/msg/Image'](header=header(ts), **vars(fields))


def compressed_msg(ts: Any, fmt: str, data: np.ndarray) -> Any:
    return ts.types['sensor_msgs/msg/CompressedImage'](header=header(ts), format=fmt, data=data)


def cdr_round_trip(ts: Any, msg: Any) -> Any:
    return ts.deserialize_cdr(ts.serialize_cdr(msg, msg.__msgtype__), msg.__msgtype__)


def sample(encoding: str, height: int = 5, width: int = 7, seed: int = 0) -> np.ndarray:
    channels, dtype = ENCODINGS[encoding]
    shape = (height, width) if channels == 1 else (height, width, channels)
    return np.random.default_rng(seed).integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)


def padded(array_: np.ndarray, pad: int) -> tuple[int, np.ndarray]:
    """(step, data) of an image whose rows are followed by ``pad`` 0xEE bytes."""
    rows = array_.reshape(array_.shape[0], -1).view(np.uint8)
    filler = np.full((rows.shape[0], pad), 0xEE, np.uint8)
    return rows.shape[1] + pad, np.ascontiguousarray(np.hstack([rows, filler])).reshape(-1)


def smooth(encoding: str = 'rgb8') -> np.ndarray:
    """A 32x48 gradient (jpeg-friendly) with the encoding's channels; alpha is constant."""
    y, x = np.mgrid[0:32, 0:48]
    planes = [x * 5, y * 7, (x + y) * 3, np.full_like(x, 200)]
    if encoding.startswith('bgr'):
        planes[:3] = planes[2::-1]
    return np.squeeze(np.dstack(planes[: ENCODINGS[encoding][0]]).astype(np.uint8))


@pytest.mark.parametrize('size', SIZES)
@pytest.mark.parametrize('encoding', sorted(ENCODINGS))
def test_round_trip_through_cdr(ts: Any, encoding: str, size: tuple[int, int]) -> None:
    source = sample(encoding, *size)
    fields = array_to_fields(source, encoding)
    assert np.shares_memory(fields.data, source)
    assert fields.data.ndim == 1 and fields.data.dtype == np.uint8 and fields.is_bigendian == 0
    assert fields.step == size[1] * ENCODINGS[encoding][0] * ENCODINGS[encoding][1].itemsize
    back = cdr_round_trip(ts, fields_msg(ts, fields))
    decoded = image_to_array(back)
    assert decoded.dtype == source.dtype and decoded.shape == source.shape
    assert_array_equal(decoded, source)
    assert np.shares_memory(decoded, back.data)
    assert_array_equal(message_to_cvimage(back), source)
    assert_array_equal(message_to_cvimage(back, encoding), source)


@pytest.mark.parametrize('kind', ['numpy', 'array', 'bytes', 'bytearray', 'memoryview'])
@pytest.mark.parametrize('encoding', ['rgb8', 'bgra8', 'mono8', 'mono16'])
def test_padded_step_is_a_zero_copy_view(encoding: str, kind: str) -> None:
    source = sample(encoding, 5, 7, seed=1)
    step, flat = padded(source, 6 if encoding == 'mono16' else 5)
    data = {
        'numpy': flat,
        'array': array.array('B', flat.tobytes()),
        'bytes': flat.tobytes() + b'trailing bytes are ignored',
        'bytearray': bytearray(flat.tobytes()),
        'memoryview': memoryview(flat.tobytes()),
    }[kind]
    msg = SimpleNamespace(**{**GOOD, 'encoding': encoding, 'step': step, 'data': data})
    decoded = image_to_array(msg)
    assert_array_equal(decoded, source)
    assert not decoded.flags.c_contiguous
    assert np.shares_memory(decoded, np.frombuffer(data, np.uint8))


def test_mono16_byte_orders_agree(ts: Any) -> None:
    values = sample('mono16', 5, 7, seed=3)
    decoded = []
    for big, order in ((0, '<u2'), (1, '>u2')):
        data = np.frombuffer(values.astype(order).tobytes(), np.uint8)
        back = cdr_round_trip(ts, image_msg(ts, 'mono16', 14, data, big))
        decoded.append(image_to_array(back))
        assert_array_equal(message_to_cvimage(back), values)
    for result in decoded:
        assert result.dtype.isnative and result.dtype == np.uint16
        assert_array_equal(result, values)


@pytest.mark.parametrize(
    ('changes', 'match'),
    [
        (
            {'encoding': 'yuv422'},
            r"encoding 'yuv422' \(supported: mono8, mono16",
        ),
        ({'encoding': 'RGB8'}, 'unsupported image encoding'),
        ({'height': 0}, 'size must be positive, got 7x0'),
        ({'width': -1}, 'size must be positive'),
        ({'step': 20}, 'step 20 is smaller than width.*= 21'),
        ({'encoding': 'mono16', 'step': 15}, 'step 15 is not a multiple of the 2-byte'),
        ({'data': bytes(104)}, 'expected 105 bytes .*received 104'),
        ({'step': 24, 'data': bytes(105)}, 'expected 120 bytes .*received 105'),
    ],
)
def test_image_errors(changes: dict[str, Any], match: str) -> None:
    msg = SimpleNamespace(**{**GOOD, 'data': bytes(105), **changes})
    with pytest.raises(ImageFormatError, match=match):
        image_to_array(msg)


@pytest.mark.parametrize(
    ('array_', 'encoding', 'match'),
    [
        (np.zeros((5, 7, 3), np.uint8), 'rgb16', 'unsupported image encoding'),
        (np.zeros((5, 7), np.uint8), 'rgb8', r'rgb8 needs a HxWx3 array, got shape \(5, 7\)'),
        (np.zeros((5, 7, 4), np.uint8), 'rgb8', 'needs a HxWx3 array'),
        (np.zeros((5, 7, 3), np.uint8), 'mono8', 'mono8 needs a HxW array'),
        (np.zeros((5, 7), np.uint16), 'mono8', 'mono8 needs a uint8 array, got uint16'),
        (np.zeros((5, 7), np.float32), 'mono16', 'needs a uint16 array, got float32'),
        (np.zeros((0, 7), np.uint8), 'mono8', 'size must be positive'),
    ],
)
def test_array_to_fields_errors(array_: np.ndarray, encoding: str, match: str) -> None:
    with pytest.raises(ImageFormatError, match=match):
        array_to_fields(array_, encoding)


def test_array_to_fields_copies_only_when_needed() -> None:
    source = sample('rgb8', 6, 8)[:, ::2]
    fields = array_to_fields(source, 'rgb8')
    assert fields.step == 12 and fields.data.flags.c_contiguous
    assert_array_equal(fields.data.reshape(6, 4, 3), source)
    swapped = sample('mono16').astype('>u2')
    data = array_to_fields(swapped, 'mono16').data
    assert_array_equal(data.view(np.uint16).reshape(5, 7), swapped)
    assert array_to_fields(sample('mono8')[:, :, None], 'mono8').step == 7


BGR_OF = {
    'rgb8': lambda a: a[:, :, ::-1],
    'bgr8': lambda a: a,
    'rgba8': lambda a: a[:, :, 2::-1],
    'bgra8': lambda a: a[:, :, :3],
    'mono8': lambda a: a,
}


@pytest.mark.parametrize(('fmt', 'tolerance'), [('png', 0.0), ('jpeg', 2.0)])
@pytest.mark.parametrize('encoding', sorted(BGR_OF))
def test_encode_compressed_round_trip(ts: Any, encoding: str, fmt: str, tolerance: float) -> None:
    source = sample(encoding, 5, 7, seed=4) if fmt == 'png' else smooth(encoding)
    target = 'mono8' if encoding == 'mono8' else 'bgr8'
    sent, data = encode_compressed(source, encoding, fmt, quality=95)
    assert sent == f'{encoding}; {fmt} compressed {target}'
    back = cdr_round_trip(ts, compressed_msg(ts, sent, data))
    assert is_compressed(back)
    decoded, decoded_encoding = compressed_to_array(back)
    assert decoded_encoding == target and decoded.shape[:2] == source.shape[:2]
    assert np.abs(decoded.astype(int) - BGR_OF[encoding](source)).mean() <= tolerance
    assert_array_equal(message_to_cvimage(back), decoded)


@pytest.mark.parametrize(
    'fmt',
    ['jpeg', 'jpg', 'JPEG', 'png', 'rgb8; jpeg compressed bgr8', 'bgr8; png compressed bgr8']
    + ['mono8; jpeg compressed mono8', 'mono8; png compressed mono8'],
)
def test_compressed_format_strings(ts: Any, fmt: str) -> None:
    image = smooth('mono8' if fmt.startswith('mono8') else 'bgr8')
    ok, data = cv2.imencode('.png' if 'png' in fmt else '.jpg', image)
    assert ok
    decoded, encoding = compressed_to_array(compressed_msg(ts, fmt, data.reshape(-1)))
    assert encoding == ('mono8' if image.ndim == 2 else 'bgr8')
    assert np.abs(decoded.astype(int) - image).max() <= (0 if 'png' in fmt else 16)


@pytest.mark.parametrize('fmt', ['jpeg', 'png', 'rgb8; jpeg compressed bgr8', 'tiff', ''])
@pytest.mark.parametrize('codec', ['.png', '.jpg'])
def test_the_codec_comes_from_the_bytes_not_the_format(fmt: str, codec: str) -> None:
    image = smooth('bgr8')
    ok, data = cv2.imencode(codec, image)
    assert ok
    decoded, encoding = compressed_to_array(SimpleNamespace(format=fmt, data=data.reshape(-1)))
    assert encoding == 'bgr8' and decoded.shape == image.shape
    assert np.abs(decoded.astype(int) - image).max() <= (0 if codec == '.png' else 16)


@pytest.mark.parametrize(
    ('data', 'match'),
    [
        (bytes(10), r'not an image .*bytes start 00 00 00 00 00 00 00 00 \.\.\. \(neither JPEG'),
        (b'', 'CompressedImage has no data'),
        (b'\x89PNG\r\n', r'not an image .*bytes start 89 50 4e 47 0d 0a \(neither'),
        (b'GIF89a' + bytes(20), 'holds a GIF image .*segnode decodes JPEG and PNG only'),
        (b'RIFF\x00\x00\x00\x00WEBPVP8 ', 'holds a WebP image'),
        (b'\xff\xd8\xff\xe0\x00\x10JFIF' + bytes(30), 'jpeg of 40 bytes has no frame header'),
        (b'\x89PNG\r\n\x1a\n' + bytes(10), 'png of 18 bytes has no IHDR header'),
    ],
)
def test_data_that_is_no_jpeg_or_png_is_named(data: bytes, match: str) -> None:
    msg = SimpleNamespace(format='rgb8; compressedDepth png', data=data)
    with pytest.raises(ImageFormatError, match=match):
        compressed_to_array(msg)
    with pytest.raises(ImageFormatError, match=match):
        declared_size(msg)


def test_a_truncated_jpeg_is_refused_on_every_opencv() -> None:
    ok, jpeg = cv2.imencode(
        '.jpg', np.random.default_rng(1).integers(0, 256, (64, 80, 3), np.uint8)
    )
    assert ok
    data = bytes(jpeg)
    with pytest.raises(ImageFormatError, match='truncated jpeg .*no end-of-image marker'):
        compressed_to_array(SimpleNamespace(format='jpeg', data=data[: len(data) * 9 // 10]))
    padded, _ = compressed_to_array(SimpleNamespace(format='jpeg', data=data + bytes(16)))
    assert padded.shape == (64, 80, 3)  # bytes after the marker are tolerated


def test_encode_compressed_errors() -> None:
    with pytest.raises(ImageFormatError, match="unsupported compression 'webp'"):
        encode_compressed(sample('rgb8'), 'rgb8', 'webp')
    with pytest.raises(ImageFormatError, match='quality must be in 1..100'):
        encode_compressed(sample('rgb8'), 'rgb8', 'jpeg', quality=0)
    with pytest.raises(ImageFormatError, match='mono16 cannot be compressed as jpeg'):
        encode_compressed(sample('mono16'), 'mono16', 'jpeg')
    fmt, data = encode_compressed(sample('mono16'), 'mono16', 'png')
    assert fmt == 'mono16; png compressed mono16'
    assert cv2.imdecode(data, cv2.IMREAD_UNCHANGED).dtype == np.uint16


@pytest.mark.parametrize(
    ('encoding', 'frame_encoding', 'expected', 'zero_copy'),
    [
        ('rgb8', 'rgb8', lambda a: a, True),
        ('bgr8', 'bgr8', lambda a: a, True),
        ('rgba8', 'rgb8', lambda a: a[:, :, :3], True),
        ('bgra8', 'bgr8', lambda a: a[:, :, :3], True),
        ('mono8', 'rgb8', lambda a: np.dstack([a] * 3), False),
        ('mono16', 'rgb8', lambda a: np.dstack([a >> 8] * 3).astype(np.uint8), False),
    ],
)
def test_to_rgb_frame(
    ts: Any, encoding: str, frame_encoding: str, expected: Any, zero_copy: bool
) -> None:
    source = sample(encoding, 5, 7, seed=5)
    step, flat = padded(source, 4)
    back = cdr_round_trip(ts, image_msg(ts, encoding, step, flat))
    frame, got = to_rgb_frame(back)
    assert got == frame_encoding and frame.shape == (5, 7, 3) and frame.dtype == np.uint8
    assert_array_equal(frame, expected(source))
    assert np.shares_memory(frame, back.data) == zero_copy
    assert frame.flags.writeable != zero_copy  # rosbags' deserialised data is read-only


@pytest.mark.parametrize(('encoding', 'channels'), [('rgb8', 3), ('mono8', 1)])
def test_to_rgb_frame_compressed(ts: Any, encoding: str, channels: int) -> None:
    source = sample(encoding, 5, 7, seed=6)
    fmt, data = encode_compressed(source, encoding, 'png')
    frame, got = to_rgb_frame(compressed_msg(ts, fmt, data))
    assert frame.shape == (5, 7, 3) and got == ('bgr8' if channels == 3 else 'rgb8')
    expected = source[:, :, ::-1] if channels == 3 else np.dstack([source] * 3)
    assert_array_equal(frame, expected)


def test_colorize_palette_and_lut() -> None:
    palette = np.array([[128, 64, 128], [70, 70, 70], [0, 0, 142]], np.uint8)
    mask = np.array([[0, 1, 2], [3, 255, 1]], np.uint8)
    expected = np.array(
        [[[128, 64, 128], [70, 70, 70], [0, 0, 142]], [[0, 0, 0], [0, 0, 0], [70, 70, 70]]],
        np.uint8,
    )
    assert_array_equal(colorize(mask, palette), expected)
    lut = palette_lut(palette.tolist())
    assert lut.shape == (256, 3) and lut.dtype == np.uint8 and not lut[3:].any()
    for _ in range(2):
        assert_array_equal(colorize(mask, lut), expected)
    full = np.random.default_rng(7).integers(0, 256, (256, 3), dtype=np.uint8)
    assert_array_equal(colorize(mask, full), full[mask])
    noisy = sample('mono8', 40, 60, seed=8)[::2, 1::2]  # every id, non-contiguous
    assert_array_equal(colorize(noisy, palette), lut[noisy])


@pytest.mark.parametrize(
    ('mask', 'palette', 'match'),
    [
        (np.zeros((2, 2), np.uint8), np.zeros((3, 4), np.uint8), r'palette must be \(K, 3\)'),
        (np.zeros((2, 2), np.uint8), np.zeros((0, 3)), r'got \(0, 3\)'),
        (np.zeros((2, 2), np.uint8), np.zeros((257, 3)), r'got \(257, 3\)'),
        (np.zeros((2, 2), np.uint8), np.array([[0, 0, 256]]), 'values must be in 0..255'),
        (np.zeros((2, 2), np.int64), np.zeros((3, 3), np.uint8), 'mask must be'),
        (np.zeros((2, 2, 1), np.uint8), np.zeros((3, 3), np.uint8), 'mask must be'),
    ],
)
def test_colorize_errors(mask: np.ndarray, palette: np.ndarray, match: str) -> None:
    with pytest.raises(ImageFormatError, match=match):
        colorize(mask, palette)


def test_stamp_ns_and_is_compressed(ts: Any) -> None:
    assert stamp_ns(header(ts)) == 1_700_000_000_123_456_789
    raw = image_msg(ts, 'mono8', 7, bytes(35))
    assert stamp_ns(raw.header) == 1_700_000_000_123_456_789 and not is_compressed(raw)
    assert is_compressed(compressed_msg(ts, 'png', np.zeros(1, np.uint8)))
    assert stamp_ns(header(ts, sec=0, nanosec=999_999_999)) == 999_999_999


def test_image_rihs01_hash(ts: Any) -> None:
    assert ts.hash_rihs01('sensor_msgs/msg/Image') == f'RIHS01_{IMAGE_RIHS01}'


def test_golden_cdr_layout(ts: Any) -> None:
    fields = array_to_fields(np.arange(18, dtype=np.uint8).reshape(2, 3, 3), 'rgb8')
    raw = ts.serialize_cdr(fields_msg(ts, fields), 'sensor_msgs/msg/Image')
    assert bytes(raw) == GOLDEN_CDR
    back = ts.deserialize_cdr(GOLDEN_CDR, 'sensor_msgs/msg/Image')
    assert (back.header.frame_id, back.height, back.width, back.step) == ('cam', 2, 3, 9)
    assert_array_equal(image_to_array(back), np.arange(18).reshape(2, 3, 3))


def test_an_exif_rotated_jpeg_keeps_its_stored_size() -> None:
    import io

    from PIL import Image

    stored = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees to display
    out = io.BytesIO()
    Image.fromarray(stored).save(out, 'jpeg', exif=exif)
    msg = SimpleNamespace(format='jpeg', data=out.getvalue())
    assert declared_size(msg) == (64, 96)
    frame, _ = to_rgb_frame(msg)
    assert frame.shape == (64, 96, 3)
