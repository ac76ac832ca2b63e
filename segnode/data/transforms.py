"""Training augmentation and normalisation of the official recipe (docs/model.md, "Augmentation").

Order: random scale 0.5-2.0 (same factor on both axes; linear image, nearest label), random
rotation within +-10 degrees with probability 0.5 (image padded with the mean colour, label
with 255), horizontal flip with probability 0.5, random crop with the same padding, then
ImageNet normalisation. ``photometric`` (not in the recipe) adds brightness, contrast,
saturation and hue jitter after the crop. Geometry runs on uint8 images (4x less memory than
float32 on 2048x4096 upscaled Cityscapes frames), so the padding colour is the mean rounded to
integers.
All randomness comes from the ``numpy.random.Generator`` passed in, which the dataset seeds
per sample: augmentation does not depend on worker processes or on resuming.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from segnode.config import IMAGENET_MEAN, IMAGENET_STD
from segnode.data.labels import IGNORE_ID

__all__ = [
    'normalise',
    'PAD_COLOUR',
    'photometric_jitter',
    'random_crop',
    'rare_pixel',
    'random_rotate',
    'random_scale',
    'resize_pair',
    'TrainAugment',
]

PAD_COLOUR = tuple(round(255 * m) for m in IMAGENET_MEAN)  # (124, 116, 104)
_MEAN = np.array([255 * m for m in IMAGENET_MEAN], dtype=np.float32)
_INV_STD = np.array([1 / (255 * s) for s in IMAGENET_STD], dtype=np.float32)

Pair = tuple[np.ndarray, np.ndarray]

# Photometric jitter: each change applied with probability 0.5, drawn uniformly in its range.
BRIGHTNESS = 32.0  # added to every channel, +-
CONTRAST = (0.5, 1.5)  # multiplies every channel
SATURATION = (0.5, 1.5)  # multiplies HSV saturation
HUE = 18.0  # added to OpenCV's hue (0-180, so +-36 degrees)


def normalise(image: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> float32 (3, H, W): (x - 255 mean) / (255 std)."""
    out = (image.astype(np.float32) - _MEAN) * _INV_STD
    return np.ascontiguousarray(out.transpose(2, 0, 1))


def resize_pair(image: np.ndarray, label: np.ndarray, size: tuple[int, int]) -> Pair:
    """Resize to (H, W): bilinear image, nearest label."""
    h, w = size
    if image.shape[:2] == (h, w):
        return image, label
    image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
    label = cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST)
    return image, label


def random_scale(
    image: np.ndarray, label: np.ndarray, rng: np.random.Generator, low: float, high: float
) -> Pair:
    """Scale both axes by one factor drawn uniformly from [low, high]."""
    factor = low + (high - low) * rng.random()
    image = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_LINEAR)
    label = cv2.resize(label, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST)
    return image, label


def random_rotate(
    image: np.ndarray, label: np.ndarray, rng: np.random.Generator, degrees: float, prob: float
) -> Pair:
    """With probability ``prob``, rotate about the centre by an angle in [-degrees, degrees]."""
    if rng.random() >= prob:
        return image, label
    angle = -degrees + 2 * degrees * rng.random()
    h, w = label.shape
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    image = cv2.warpAffine(
        image,
        matrix,
        (w, h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=PAD_COLOUR,
    )
    label = cv2.warpAffine(
        label,
        matrix,
        (w, h),
        flags=cv2.INTER_NEAREST,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=IGNORE_ID,
    )
    return image, label


def rare_pixel(
    label: np.ndarray, rng: np.random.Generator, ids: tuple[int, ...], prob: float
) -> tuple[int, int] | None:
    """With probability ``prob``, a random pixel of one of ``ids`` present in ``label``.

    The class is drawn uniformly among those present, then one of its pixels: a thin class
    (a pole) is as likely as a large rare one. None when not drawn or none is present; no
    random number is drawn when ``prob`` is 0, so the recipe's stream is unchanged.
    """
    if prob <= 0 or rng.random() >= prob:
        return None
    present = [i for i in ids if (label == i).any()]
    if not present:
        return None
    ys, xs = np.nonzero(label == present[int(rng.integers(len(present)))])
    k = int(rng.integers(len(ys)))
    return int(ys[k]), int(xs[k])


def random_crop(
    image: np.ndarray,
    label: np.ndarray,
    rng: np.random.Generator,
    size: tuple[int, int],
    around: tuple[int, int] | None = None,
) -> Pair:
    """Pad (centred: mean colour, ignore label) to at least ``size``, then crop at random.

    With ``around`` (y, x) in the unpadded label, the crop is drawn among the windows that
    contain that pixel.
    """
    ch, cw = size
    h, w = label.shape
    pad_h, pad_w = max(ch - h, 0), max(cw - w, 0)
    top, left = pad_h // 2, pad_w // 2
    if pad_h or pad_w:
        border = (top, pad_h - top, left, pad_w - left)
        image = cv2.copyMakeBorder(image, *border, cv2.BORDER_CONSTANT, value=PAD_COLOUR)
        label = cv2.copyMakeBorder(label, *border, cv2.BORDER_CONSTANT, value=IGNORE_ID)
        h, w = label.shape
    if around is None:
        y = int(rng.integers(0, h - ch + 1))
        x = int(rng.integers(0, w - cw + 1))
    else:
        py, px = around[0] + top, around[1] + left
        y = int(rng.integers(max(0, py - ch + 1), min(py, h - ch) + 1))
        x = int(rng.integers(max(0, px - cw + 1), min(px, w - cw) + 1))
    return image[y : y + ch, x : x + cw], label[y : y + ch, x : x + cw]


def photometric_jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast, saturation and hue jitter of an RGB uint8 image.

    A camera's exposure and white balance change from drive to drive (CamVid's 0006R0 is
    brighter and paler than 0016E5); geometry alone does not teach the model to ignore that.
    """
    out = image.astype(np.float32)
    if rng.random() < 0.5:
        out += rng.uniform(-BRIGHTNESS, BRIGHTNESS)
    if rng.random() < 0.5:
        out *= rng.uniform(*CONTRAST)
    jittered = np.clip(out, 0, 255).astype(np.uint8)
    saturation = rng.uniform(*SATURATION) if rng.random() < 0.5 else 1.0
    hue = rng.uniform(-HUE, HUE) if rng.random() < 0.5 else 0.0
    if saturation == 1.0 and hue == 0.0:
        return jittered
    hsv = cv2.cvtColor(jittered, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + hue) % 180
    hsv[..., 1] = np.clip(hsv[..., 1] * saturation, 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)


@dataclass(frozen=True)
class TrainAugment:
    """The official training augmentation, ending in a ``crop`` of (H, W) pixels.

    With ``rare_crop_prob`` > 0 (not in the recipe), that share of the crops is centred
    loosely on a pixel of one of ``rare_ids``: the crop contains it, anywhere in the window.
    With ``photometric`` (not in the recipe), :func:`photometric_jitter` follows the crop; off,
    it draws no random number, so the recipe's stream is unchanged.
    """

    crop: tuple[int, int]
    scale: tuple[float, float] = (0.5, 2.0)
    rotate: float = 10.0
    rotate_prob: float = 0.5
    flip: bool = True
    rare_ids: tuple[int, ...] = ()
    rare_crop_prob: float = 0.0
    photometric: bool = False

    def __call__(self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator) -> Pair:
        """Augment one RGB uint8 image and its uint8 trainId label."""
        image, label = random_scale(image, label, rng, *self.scale)
        image, label = random_rotate(image, label, rng, self.rotate, self.rotate_prob)
        if self.flip and rng.random() < 0.5:
            image, label = image[:, ::-1], label[:, ::-1]
        around = rare_pixel(label, rng, self.rare_ids, self.rare_crop_prob)
        image, label = random_crop(image, label, rng, self.crop, around)
        if self.photometric:
            image = photometric_jitter(image, rng)
        return np.ascontiguousarray(image), np.ascontiguousarray(label)
