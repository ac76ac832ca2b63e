"""Compressed label masks: lossless PNG, encoded on a thread of their own.

A mono8 mask of 1920x1080 is 2 MB a frame; as PNG it is a few tens of kB (docs/benchmarks.md,
"Compressed labels"). PNG, not JPEG: a lossy codec changes class ids at every edge. The
``format`` string is the one image_transport's compressed plugin writes for a mono8 image
(``<encoding>; png compressed `` with no target encoding after it, as for any non-colour
image), so ``image_transport`` republishers, ``cv_bridge`` and the bag tools decode it.

:class:`PngEncoder` takes a mask from the worker thread, which goes on at once, and encodes and
publishes it on one thread of its own. It keeps the newest mask of each camera only: when
encoding falls behind, a waiting mask is replaced by the newer one (counted in
:attr:`PngEncoder.replaced`), as the frame slots of the service replace frames.
"""

from __future__ import annotations

from collections.abc import Callable
import threading
import time
from typing import Any

import cv2
import numpy as np

from segnode.errors import describe

__all__ = ['PNG_FORMAT', 'PNG_LEVEL', 'PngEncoder', 'encode_png', 'png_params']

# What compressed_image_transport writes for a mono8 image (no target encoding follows).
PNG_FORMAT = 'mono8; png compressed '
# zlib level 1 with run-length matching and no row filter: a mask is long runs of one id, so
# this is 2-3x faster than the default filters and strategy for about twice the bytes of
# level 9, still 100x smaller than the raw mask (docs/benchmarks.md, "Compressed labels").
PNG_LEVEL = 1


def png_params(level: int = PNG_LEVEL) -> list[int]:
    """The PNG options OpenCV encodes masks with (the row filter where it can set it)."""
    params = [cv2.IMWRITE_PNG_COMPRESSION, level]
    params += [cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
    if hasattr(cv2, 'IMWRITE_PNG_FILTER'):  # not in older OpenCV 4.x releases
        params += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]
    return params


def encode_png(mask: np.ndarray, level: int = PNG_LEVEL) -> bytes:
    """A (H, W) uint8 mask as lossless PNG bytes.

    Raises:
        ValueError: Not a 2-D uint8 array, or OpenCV could not encode it.
    """
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise ValueError(f'a PNG label mask is (H, W) uint8, got {mask.dtype} {mask.shape}')
    ok, data = cv2.imencode('.png', mask, png_params(level))
    if not ok:
        raise ValueError(f'OpenCV could not encode a {mask.shape[1]}x{mask.shape[0]} mask')
    return data.tobytes()


Publish = Callable[[str, Any, bytes], None]


class PngEncoder:
    """Encode masks as PNG and publish them on one thread, the newest per camera.

    Args:
        publish: ``(camera, header, png_bytes)``, called on the encoder's thread.
        failed: ``(camera, reason)`` when encoding or publishing raised.
        level: zlib compression level (0-9).
    """

    def __init__(
        self, publish: Publish, failed: Callable[[str, str], None], *, level: int = PNG_LEVEL
    ) -> None:
        self.publish = publish
        self.failed = failed
        self.level = level
        self.replaced = 0
        self._waiting: dict[str, tuple[Any, np.ndarray]] = {}
        self._encode_ms: dict[str, float] = {}
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name='segnode-png', daemon=True)
        self._thread.start()

    def submit(self, camera: str, header: Any, mask: np.ndarray) -> None:
        """Queue a mask (not copied: the caller must not change it afterwards)."""
        with self._cond:
            if self._closed:
                return
            if camera in self._waiting:
                self.replaced += 1
            self._waiting[camera] = (header, mask)
            self._cond.notify()

    def encode_ms(self, camera: str) -> float:
        """How long the camera's most recent PNG took to encode (0.0 before the first)."""
        with self._cond:
            return self._encode_ms.get(camera, 0.0)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued mask is published; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._waiting or self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Drop what is waiting and stop the thread, after the publish under way."""
        with self._cond:
            self._closed = True
            self._waiting.clear()
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                camera = next(iter(self._waiting))
                header, mask = self._waiting.pop(camera)
                self._busy = True
            try:
                start = time.perf_counter()
                data = encode_png(mask, self.level)
                took = (time.perf_counter() - start) * 1e3
                with self._cond:
                    self._encode_ms[camera] = took
                self.publish(camera, header, data)
            except Exception as err:  # noqa: BLE001 - one bad mask must not stop the thread
                self.failed(camera, f'compressing labels failed: {describe(err)}')
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
