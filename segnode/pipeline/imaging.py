"""ROS-free codec between image message fields and numpy arrays.

Works on any object with the ROS 2 attribute names, so rclpy and rosbags messages alike
(docs/node.md, "ROS conventions"): ``sensor_msgs/Image`` (``header``, ``height``, ``width``,
``encoding``, ``is_bigendian``, ``step``, ``data``) and ``sensor_msgs/CompressedImage``
(``header``, ``format``, ``data``). ``data`` may be a numpy uint8 array (rosbags), an
``array.array('B')`` (rclpy), ``bytes``, ``bytearray`` or ``memoryview``.

Decoding a raw image is zero-copy whenever the layout allows: the array is a strided view of
``data`` that honours the row ``step`` (padded rows give a non-contiguous view). Only a 16-bit
image whose byte order differs from the machine's is copied. Compressed images (JPEG or PNG,
told apart by their magic bytes whatever ``format`` says, as cv_bridge does) go through
``cv2.imdecode`` once their header's size has been checked (:mod:`.image_header`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import sys
from typing import Any

import cv2
import numpy as np
from numpy.lib.stride_tricks import as_strided

from segnode.errors import clip, ImageFormatError, one_line
from segnode.pipeline.image_header import read_header

__all__ = [
    'ENCODINGS',
    'ImageFields',
    'array_to_fields',
    'colorize',
    'compressed_to_array',
    'declared_size',
    'encode_compressed',
    'image_to_array',
    'is_compressed',
    'palette_lut',
    'stamp_ns',
    'to_rgb_frame',
]

ENCODINGS: dict[str, tuple[int, np.dtype[Any]]] = {
    'mono8': (1, np.dtype(np.uint8)),
    'mono16': (1, np.dtype(np.uint16)),
    'rgb8': (3, np.dtype(np.uint8)),
    'bgr8': (3, np.dtype(np.uint8)),
    'rgba8': (4, np.dtype(np.uint8)),
    'bgra8': (4, np.dtype(np.uint8)),
}

_FORMATS = {'jpeg': 'jpeg', 'jpg': 'jpeg', 'png': 'png'}
_TO_BGR = {'rgb8': cv2.COLOR_RGB2BGR, 'rgba8': cv2.COLOR_RGBA2BGR, 'bgra8': cv2.COLOR_BGRA2BGR}


def _encoding(encoding: str) -> tuple[int, np.dtype[Any]]:
    try:
        return ENCODINGS[encoding]
    except KeyError:
        supported = ', '.join(ENCODINGS)
        raise ImageFormatError(
            f'unsupported image encoding {clip(encoding, 40)!r} (supported: {supported})'
        ) from None


def _byte_view(data: Any) -> np.ndarray:
    """A flat uint8 view of a message's ``data`` (a copy only for a non-contiguous buffer).

    Raises:
        ImageFormatError: ``data`` is neither bytes-like nor a sequence of integers in 0..255.
    """
    if isinstance(data, np.ndarray):
        if data.dtype.kind not in 'uib' or data.dtype == object:
            raise ImageFormatError(f'image data must hold bytes, got a {data.dtype} array')
        flat: np.ndarray = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
        return flat
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            return np.frombuffer(data, dtype=np.uint8)
        except (BufferError, ValueError):  # a strided or non-byte memoryview: copy it
            return np.frombuffer(memoryview(data).tobytes(), dtype=np.uint8)
    if isinstance(data, (str, dict)) or data is None:
        raise ImageFormatError(f'image data must be bytes, got {type(data).__name__}')
    try:
        return np.frombuffer(data, dtype=np.uint8)  # array.array('B') from rclpy
    except (TypeError, ValueError, BufferError):
        pass
    try:
        values = np.asarray(data)
    except (TypeError, ValueError) as err:
        raise ImageFormatError(f'image data must be bytes, got {type(data).__name__}') from err
    if values.dtype.kind not in 'ui' or (values.size and (values.min() < 0 or values.max() > 255)):
        raise ImageFormatError(
            f'image data must be bytes or integers in 0..255, got {type(data).__name__} of '
            f'{values.dtype}' + (f' in {values.min()}..{values.max()}' if values.size else '')
        )
    return values.astype(np.uint8).reshape(-1)


def stamp_ns(header: Any) -> int:
    """``header.stamp`` as integer nanoseconds (``sec * 10**9 + nanosec``)."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def is_compressed(msg: Any) -> bool:
    """True for CompressedImage-like objects (they have ``format`` and no ``encoding``)."""
    return hasattr(msg, 'format') and not hasattr(msg, 'encoding')


def image_to_array(msg: Any) -> np.ndarray:
    """Decode a ``sensor_msgs/Image`` into (H, W) for mono or (H, W, C), zero-copy if possible.

    The result is a strided view of ``msg.data`` (writable only if ``data`` is); rows padded
    by ``step`` give a non-contiguous view. mono16 honours ``is_bigendian`` and is returned in
    native byte order (a copy only when the message's order differs). Extra trailing bytes in
    ``data`` are ignored.

    Raises:
        ImageFormatError: Unknown encoding, non-positive size, ``step`` too small or not a
            multiple of the element size, or ``data`` shorter than ``step * height``.
    """
    channels, dtype = _encoding(msg.encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageFormatError(f'image size must be positive, got {width}x{height} (WxH)')
    size = dtype.itemsize
    row = width * channels * size
    if step < row:
        raise ImageFormatError(
            f'step {step} is smaller than width*channels*bytes = {width}*{channels}*{size} = {row}'
        )
    if step % size:
        raise ImageFormatError(f'step {step} is not a multiple of the {size}-byte element size')
    buf = _byte_view(msg.data)
    need = step * height
    if buf.size < need:
        raise ImageFormatError(
            f'{msg.encoding} image data too short: expected {need} bytes '
            f'(step {step} x height {height}), received {buf.size}'
        )
    if size > 1:
        big = bool(msg.is_bigendian)
        elements = buf[:need].view(dtype.newbyteorder('>' if big else '<'))
    else:
        elements = buf[:need]
    if channels == 1:
        shape: tuple[int, ...] = (height, width)
        strides: tuple[int, ...] = (step, size)
    else:
        shape, strides = (height, width, channels), (step, channels * size, size)
    array: np.ndarray = as_strided(elements, shape=shape, strides=strides)
    if not array.dtype.isnative:
        array = array.astype(dtype)
    return array


def declared_size(msg: Any) -> tuple[int, int]:
    """The (height, width) a message claims, read without decoding its pixels.

    Raw images give their ``height`` and ``width`` fields; compressed ones the size in the
    JPEG or PNG header (:mod:`segnode.pipeline.image_header`, the codec read from the bytes).
    A frame too large to decode is refused on this size before any memory is spent on it.

    Raises:
        ImageFormatError: The size fields are not integers, the data is not a JPEG or PNG, or
            its header is not readable.
    """
    if not is_compressed(msg):
        try:
            return int(msg.height), int(msg.width)
        except (TypeError, ValueError, OverflowError) as err:
            raise ImageFormatError(
                f'image height and width must be integers: {clip(one_line(err))}'
            ) from err
    header = read_header(_byte_view(msg.data), msg.format)
    return header.height, header.width


# A JPEG ends with the EOI marker FFD9 (a 0xFF in the entropy-coded data is always followed by
# 0x00, so the marker cannot occur there); some encoders pad a few bytes after it.
JPEG_END, JPEG_TAIL = b'\xff\xd9', 64


def compressed_to_array(msg: Any) -> tuple[np.ndarray, str]:
    """Decode a ``sensor_msgs/CompressedImage`` with ``cv2.imdecode``.

    The codec comes from the data's magic bytes, as cv_bridge and image_transport decode; the
    ``format`` string is not used. Before decoding, the header's size is checked against the
    fewest bytes a complete image of that size takes (``ImageHeader.check_density``), and a
    JPEG must end with its end-of-image marker.

    Returns:
        (H, W, 3) with 'bgr8' for colour images (alpha dropped), (H, W) with 'mono8' for
        grayscale ones (16-bit png is reduced to 8 bits by OpenCV).

    Raises:
        ImageFormatError: The data is neither JPEG nor PNG, has fewer bytes than its declared
            size needs, is a truncated JPEG, or cannot be decoded.
    """
    buf = _byte_view(msg.data)
    header = read_header(buf, msg.format)
    kind = header.codec
    header.check_density(buf.size)
    if kind == 'jpeg' and JPEG_END not in buf[-JPEG_TAIL:].tobytes():
        # OpenCV 4 decodes a truncated JPEG into a partly grey frame (with a warning on
        # stderr); OpenCV 5 refuses it. Refuse it on both: the mask would be of half a frame.
        raise ImageFormatError(
            f'truncated jpeg CompressedImage: no end-of-image marker ({buf.size} bytes)'
        )
    try:
        # The stored size, as image_transport decodes it: an EXIF orientation is not applied.
        flags = cv2.IMREAD_ANYCOLOR | cv2.IMREAD_IGNORE_ORIENTATION
        image = cv2.imdecode(buf, flags)
    except cv2.error:  # e.g. a header claiming more than CV_IO_MAX_IMAGE_PIXELS
        image = None  # OpenCV's own words are a C++ trace: segnode's reason says it all
    if image is None:
        raise ImageFormatError(
            f'cannot decode {kind} CompressedImage data ({buf.size} bytes, declares '
            f'{header.width}x{header.height})'
        )
    decoded: np.ndarray = image
    if decoded.shape[:2] != (header.height, header.width):
        raise ImageFormatError(
            f'{kind} declares {header.width}x{header.height} but decodes to '
            f'{decoded.shape[1]}x{decoded.shape[0]}'
        )
    return decoded, 'mono8' if decoded.ndim == 2 else 'bgr8'


def to_rgb_frame(msg: Any) -> tuple[np.ndarray, str]:
    """The (H, W, 3) uint8 frame the engine takes, and its channel order 'rgb8' or 'bgr8'.

    Channels are never swapped (the engine accepts both orders). rgb8/bgr8 give the zero-copy
    view, rgba8/bgra8 its ``[:, :, :3]`` view (zero-copy, non-contiguous). mono8 is replicated
    to three channels, mono16 first reduced by ``>> 8`` (both 'rgb8'). Compressed messages are
    decoded ('bgr8', or 'rgb8' for grayscale ones).
    """
    if is_compressed(msg):
        array, encoding = compressed_to_array(msg)
    else:
        array, encoding = image_to_array(msg), str(msg.encoding)
    if encoding in ('rgb8', 'bgr8'):
        return array, encoding
    if encoding in ('rgba8', 'bgra8'):
        return array[:, :, :3], encoding[:3] + '8'
    if encoding == 'mono16':
        array = (array >> 8).astype(np.uint8)
    rgb: np.ndarray = cv2.cvtColor(array, cv2.COLOR_GRAY2RGB)  # much faster than numpy here
    return rgb, 'rgb8'


@dataclass(frozen=True)
class ImageFields:
    """The ``sensor_msgs/Image`` fields of an array; ``data`` is 1-D contiguous uint8."""

    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: np.ndarray


def array_to_fields(array: np.ndarray, encoding: str) -> ImageFields:
    """The ``sensor_msgs/Image`` fields of an array, sharing its memory when contiguous.

    Args:
        array: (H, W) (or (H, W, 1)) for mono8/mono16, (H, W, C) otherwise, of the encoding's
            dtype (uint16 of either byte order for mono16).
        encoding: One of ``ENCODINGS``.

    Raises:
        ImageFormatError: Unknown encoding, or a shape or dtype that does not match it.
    """
    channels, dtype = _encoding(encoding)
    if channels == 1 and array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    expected = 'HxW' if channels == 1 else f'HxWx{channels}'
    if array.ndim != (2 if channels == 1 else 3) or (channels > 1 and array.shape[2] != channels):
        raise ImageFormatError(f'{encoding} needs a {expected} array, got shape {array.shape}')
    if array.dtype.kind != dtype.kind or array.dtype.itemsize != dtype.itemsize:
        raise ImageFormatError(f'{encoding} needs a {dtype} array, got {array.dtype}')
    height, width = int(array.shape[0]), int(array.shape[1])
    if height <= 0 or width <= 0:
        raise ImageFormatError(f'image size must be positive, got shape {array.shape}')
    native = np.ascontiguousarray(array, dtype=dtype)  # no copy if contiguous and native
    return ImageFields(
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=int(sys.byteorder == 'big'),
        step=width * channels * dtype.itemsize,
        data=native.reshape(-1).view(np.uint8),
    )


def encode_compressed(
    array: np.ndarray, encoding: str, fmt: str = 'jpeg', quality: int = 90
) -> tuple[str, np.ndarray]:
    """``(format, data)`` of a CompressedImage, the image_transport way.

    Colour is compressed in bgr8 order and mono8 as grayscale (mono16 only as 16-bit png), and
    the format string names both, e.g. ``'rgb8; jpeg compressed bgr8'``.

    Args:
        array: Image laid out as for ``array_to_fields``.
        encoding: Its encoding, one of ``ENCODINGS``.
        fmt: 'jpeg' (or 'jpg') or 'png'.
        quality: JPEG quality 1..100 (ignored for png).

    Raises:
        ImageFormatError: Unknown format or encoding, mismatched array, or mono16 as jpeg.
    """
    kind = _FORMATS.get(fmt.lower())
    if kind is None:
        raise ImageFormatError(f'unsupported compression {fmt!r} (expected jpeg or png)')
    if not 1 <= quality <= 100:
        raise ImageFormatError(f'jpeg quality must be in 1..100, got {quality}')
    fields = array_to_fields(array, encoding)
    if encoding == 'mono16' and kind == 'jpeg':
        raise ImageFormatError('mono16 cannot be compressed as jpeg (use png)')
    channels, dtype = ENCODINGS[encoding]
    image = fields.data.view(dtype).reshape(
        array.shape[:2] + ((channels,) if channels > 1 else ())
    )
    target = encoding if channels == 1 else 'bgr8'
    if encoding in _TO_BGR:
        image = cv2.cvtColor(image, _TO_BGR[encoding])
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if kind == 'jpeg' else []
    ok, data = cv2.imencode('.jpg' if kind == 'jpeg' else '.png', image, params)
    if not ok:
        raise ImageFormatError(f'cv2.imencode failed for a {encoding} {array.shape} image')
    flat: np.ndarray = np.asarray(data, dtype=np.uint8).reshape(-1)
    return f'{encoding}; {kind} compressed {target}', flat


def palette_lut(palette: np.ndarray | Sequence[Sequence[int]]) -> np.ndarray:
    """A (256, 3) uint8 lookup table: row i is the colour of class i, black past the palette.

    Build it once per palette and pass it to ``colorize`` to skip the rebuild per frame.

    Raises:
        ImageFormatError: The palette is not (K, 3) with K <= 256 and values in 0..255.
    """
    table = np.asarray(palette)
    if table.ndim != 2 or table.shape[1] != 3 or not 0 < table.shape[0] <= 256:
        raise ImageFormatError(f'palette must be (K, 3) with 1 <= K <= 256, got {table.shape}')
    if table.dtype != np.uint8 and (table.min() < 0 or table.max() > 255):
        raise ImageFormatError('palette values must be in 0..255')
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: table.shape[0]] = table
    return lut


def colorize(mask: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(H, W) uint8 class ids -> (H, W, 3) uint8 colours; ids past the palette are black.

    ``palette`` is a (K, 3) palette or a prebuilt ``palette_lut(palette)`` table (any (256, 3)
    uint8 array is used as is). Building the table costs about as much as a small mask, so
    callers that colour every frame should cache ``palette_lut(palette)`` once. 255
    (unlabeled) is black unless the palette itself has 256 rows. The lookup is ``cv2.LUT``
    on the mask replicated to three channels (about twice as fast as ``np.take``).

    Raises:
        ImageFormatError: ``mask`` is not a 2-D uint8 array, or the palette is invalid.
    """
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise ImageFormatError(f'mask must be (H, W) uint8, got {mask.shape} {mask.dtype}')
    table = np.asarray(palette)
    if table.shape != (256, 3) or table.dtype != np.uint8:
        table = palette_lut(table)
    ids = cv2.cvtColor(mask, cv2.COLOR_GRAY2RGB)
    out: np.ndarray = cv2.LUT(ids, np.ascontiguousarray(table).reshape(256, 1, 3))
    return out
