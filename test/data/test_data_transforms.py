"""Augmentation, normalisation and boundary ground truth."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from segnode.config import IMAGENET_MEAN, IMAGENET_STD
from segnode.data.boundary import binary_boundary
from segnode.data.transforms import (
    normalise,
    PAD_COLOUR,
    photometric_jitter,
    random_crop,
    random_rotate,
    rare_pixel,
    TrainAugment,
)


def test_boundary_band_is_two_pixels_each_side() -> None:
    label = np.zeros((12, 12), dtype=np.uint8)
    label[:, 6:] = 1
    edges = binary_boundary(label)
    assert edges.dtype == np.float32 and edges.shape == (12, 12)
    assert np.array_equal(np.flatnonzero(edges[5]), [4, 5, 6, 7])
    assert edges[:, :4].sum() == 0 and edges[:, 8:].sum() == 0


def test_boundary_counts_edges_to_ignore_and_uniform_is_empty() -> None:
    label = np.full((10, 10), 3, dtype=np.uint8)
    assert binary_boundary(label).sum() == 0
    label[:, 5:] = 255
    edges = binary_boundary(label)
    assert np.array_equal(np.flatnonzero(edges[4]), [3, 4, 5, 6])  # inside the ignore region too


def test_normalise_imagenet() -> None:
    image = np.zeros((2, 3, 3), dtype=np.uint8)
    image[..., 0] = 255
    out = normalise(image)
    assert out.shape == (3, 2, 3) and out.dtype == np.float32
    expected_r = (255 - 255 * IMAGENET_MEAN[0]) / (255 * IMAGENET_STD[0])
    assert out[0, 0, 0] == pytest.approx(expected_r, rel=1e-6)
    assert out[1, 0, 0] == pytest.approx(-IMAGENET_MEAN[1] / IMAGENET_STD[1], rel=1e-6)


def test_crop_pads_with_mean_and_ignore() -> None:
    rng = np.random.default_rng(0)
    image = np.zeros((10, 20, 3), dtype=np.uint8)
    label = np.zeros((10, 20), dtype=np.uint8)
    out_image, out_label = random_crop(image, label, rng, (30, 20))
    assert out_image.shape == (30, 20, 3) and out_label.shape == (30, 20)
    assert (out_label == 255).sum() == 20 * 20 and (out_label == 0).sum() == 10 * 20
    assert tuple(out_image[0, 0]) == PAD_COLOUR and tuple(out_image[15, 0]) == (0, 0, 0)


def test_rotation_pads_label_with_ignore() -> None:
    rng = np.random.default_rng(3)
    image = np.zeros((40, 40, 3), dtype=np.uint8)
    label = np.zeros((40, 40), dtype=np.uint8)
    rotated_image, rotated = random_rotate(image, label, rng, degrees=10, prob=1.0)
    assert rotated[0, 0] == 255 and rotated[20, 20] == 0
    assert tuple(rotated_image[0, 0]) == PAD_COLOUR
    assert set(np.unique(rotated)) <= {0, 255}  # nearest: no interpolated ids


def test_train_augment_is_deterministic_per_seed_and_keeps_label_values() -> None:
    src = np.random.default_rng(1)
    image = src.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    label = src.integers(0, 5, (48, 64), dtype=np.uint8)
    augment = TrainAugment(crop=(32, 32))
    a = augment(image, label, np.random.default_rng(7))
    b = augment(image, label, np.random.default_rng(7))
    c = augment(image, label, np.random.default_rng(8))
    assert a[0].shape == (32, 32, 3) and a[1].shape == (32, 32)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert set(np.unique(a[1])) <= set(range(5)) | {255}


def test_a_rare_crop_always_contains_the_drawn_pixel() -> None:
    label = np.zeros((100, 200), np.uint8)
    label[40:60, 150] = 7  # a one-pixel-wide pole
    image = np.zeros((100, 200, 3), np.uint8)
    for seed in range(50):
        rng = np.random.default_rng(seed)
        around = rare_pixel(label, rng, (7, 9), 1.0)
        assert around is not None and label[around] == 7
        _, crop = random_crop(image, label, rng, (32, 32), around)
        assert (crop == 7).any()


def test_a_rare_crop_inside_padding_keeps_the_pixel() -> None:
    label = np.zeros((20, 30), np.uint8)
    label[19, 29] = 3
    rng = np.random.default_rng(0)
    _, crop = random_crop(np.zeros((20, 30, 3), np.uint8), label, rng, (32, 40), (19, 29))
    assert crop.shape == (32, 40) and (crop == 3).sum() == 1


def test_without_rare_crops_the_random_stream_is_the_recipes() -> None:
    label = np.zeros((50, 50), np.uint8)
    label[5, 5] = 2
    image = np.zeros((50, 50, 3), np.uint8)
    plain = TrainAugment(crop=(16, 16))
    off = TrainAugment(crop=(16, 16), rare_ids=(2,), rare_crop_prob=0.0)
    a = plain(image, label, np.random.default_rng(3))[1]
    b = off(image, label, np.random.default_rng(3))[1]
    assert np.array_equal(a, b)
    assert rare_pixel(label, np.random.default_rng(0), (4,), 1.0) is None  # class absent


def test_rare_crops_find_a_thin_class_far_more_often_than_uniform_crops() -> None:
    label = np.zeros((200, 400), np.uint8)
    label[:, 390] = 5
    image = np.zeros((200, 400, 3), np.uint8)
    uniform = TrainAugment(crop=(64, 64), scale=(1.0, 1.0), rotate_prob=0.0, flip=False)
    rare = TrainAugment(
        crop=(64, 64),
        scale=(1.0, 1.0),
        rotate_prob=0.0,
        flip=False,
        rare_ids=(5,),
        rare_crop_prob=1.0,
    )
    hits = [
        sum(bool((aug(image, label, np.random.default_rng(s))[1] == 5).any()) for s in range(100))
        for aug in (uniform, rare)
    ]
    assert hits[1] == 100 and hits[0] < 50


def test_photometric_jitter_changes_colours_not_geometry() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    label = rng.integers(0, 11, (40, 60), dtype=np.uint8)
    plain = TrainAugment(crop=(32, 48), scale=(1.0, 1.0), rotate_prob=0.0, flip=False)
    jitter = dataclasses.replace(plain, photometric=True)
    a_image, a_label = plain(image, label, np.random.default_rng(7))
    b_image, b_label = jitter(image, label, np.random.default_rng(7))
    assert np.array_equal(a_label, b_label)  # the geometry is drawn first, the same
    assert b_image.dtype == np.uint8 and b_image.shape == a_image.shape
    outs = [photometric_jitter(a_image, np.random.default_rng(s)) for s in range(20)]
    changed = [not np.array_equal(o, a_image) for o in outs]
    assert sum(changed) >= 15  # all four are skipped with probability 1/16
    means = [float(o.mean()) for o in outs]
    assert max(means) - min(means) > 20  # brightness and contrast move the whole image
    again = photometric_jitter(a_image, np.random.default_rng(3))
    assert np.array_equal(again, outs[3])  # the generator decides everything


def test_hue_jitter_keeps_grey_grey_and_rotates_a_colour() -> None:
    grey = np.full((4, 4, 3), 128, np.uint8)
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 200
    for seed in range(10):
        out = photometric_jitter(grey, np.random.default_rng(seed))
        assert (out.max(axis=2) == out.min(axis=2)).all()  # no saturation to scale or turn
    turned = [photometric_jitter(red, np.random.default_rng(s)) for s in range(30)]
    assert any(t[0, 0, 1] > 0 or t[0, 0, 2] > 0 for t in turned)  # red took some green/blue
