"""Class weights of the training loss: frequencies, the two weightings and the weighted CE."""

from __future__ import annotations

import logging
from pathlib import Path

from conftest import tiny_overrides
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from segnode.errors import ConfigError
from segnode.train.build import build_criterion
from segnode.train.class_weights import class_weights, label_frequencies
from segnode.train.config import load_train_config
from segnode.train.loader import open_datasets
from segnode.train.losses import _mean_nll, MJSLoss


def test_frequencies_count_labelled_pixels_of_known_classes_only() -> None:
    label = np.array([[0, 0, 1, 255], [2, 7, 0, 255]], dtype=np.uint8)  # 7: no such class
    assert label_frequencies([label], 3).tolist() == [0.6, 0.2, 0.2]


def test_no_labelled_pixel_is_an_error() -> None:
    with pytest.raises(ValueError, match='no labelled pixel'):
        label_frequencies([np.full((2, 2), 255, np.uint8)], 3)


def test_rarer_classes_weigh_more_and_an_unseen_class_is_capped() -> None:
    freq = np.array([0.7, 0.25, 0.05, 0.0])
    for kind in ('enet', 'median'):
        weights = class_weights(kind, freq)
        assert weights is not None
        assert weights[0] < weights[1] < weights[2] <= weights[3] <= 51.0, kind
    median = class_weights('median', freq)
    assert median is not None and median[1].item() == pytest.approx(1.0)  # median of seen ones
    assert class_weights('none', freq) is None
    with pytest.raises(ValueError, match='class_weights must be one of'):
        class_weights('inverse', freq)


def test_weighted_mean_nll_is_torch_weighted_cross_entropy() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 5, 6)
    target = torch.randint(0, 4, (2, 5, 6))
    target[0, 0] = 255
    weight = torch.tensor([0.5, 1.0, 3.0, 7.0])
    ours = _mean_nll(F.log_softmax(logits, 1), target, 255, weight)
    ref = F.cross_entropy(logits, target, weight=weight, ignore_index=255)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-5)


def _outputs(seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    out = {'out': torch.randn(2, 3, 8, 8, generator=gen)}
    for i in range(1, 5):
        out[f'score{i}'] = torch.randn(2, 3, 8, 8, generator=gen)
        out[f'boundary{i}'] = torch.randn(2, 1, 8, 8, generator=gen)
    return out


def test_the_joint_loss_changes_with_unequal_weights_only() -> None:
    target = torch.randint(0, 3, (2, 8, 8), generator=torch.Generator().manual_seed(1))
    boundary = (torch.rand(2, 1, 8, 8) > 0.8).float()
    outputs = _outputs(2)
    plain, _ = MJSLoss(ohem_min_kept=10)(outputs, target, boundary)
    uniform, _ = MJSLoss(ohem_min_kept=10, class_weights=torch.full((3,), 4.0))(
        outputs, target, boundary
    )
    skewed, _ = MJSLoss(ohem_min_kept=10, class_weights=torch.tensor([1.0, 1.0, 9.0]))(
        outputs, target, boundary
    )
    assert uniform.item() == pytest.approx(plain.item(), rel=1e-5)
    assert skewed.item() != pytest.approx(plain.item(), rel=1e-3)


def test_a_run_computes_its_weights_from_the_training_labels(
    cityscapes_tree: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = load_train_config(None, tiny_overrides(cityscapes_tree, tmp_path, class_weights='enet'))
    data = open_datasets(cfg, with_val=False)
    with caplog.at_level(logging.INFO, logger='segnode.train'):
        criterion = build_criterion(cfg, data.train)
    assert criterion.class_weights is not None
    assert criterion.class_weights.shape == (19,)
    assert 'class weights (enet, 8 label files)' in caplog.text
    none = build_criterion(
        load_train_config(None, tiny_overrides(cityscapes_tree, tmp_path)), data.train
    )
    assert none.class_weights is None


def test_rare_classes_are_named_by_the_datasets_class_names(
    cityscapes_tree: Path, tmp_path: Path
) -> None:
    overrides = tiny_overrides(
        cityscapes_tree, tmp_path, rare_classes='[pole,lamp]', rare_crop_prob=0.5
    )
    with pytest.raises(ConfigError, match='rare_classes: no class lamp in cityscapes'):
        open_datasets(load_train_config(None, overrides), with_val=False)
    overrides = tiny_overrides(cityscapes_tree, tmp_path, rare_classes='[pole,rider]')
    augment = open_datasets(load_train_config(None, overrides), with_val=False).train.augment
    assert augment is not None and augment.rare_ids == (5, 12)
    with pytest.raises(ConfigError, match='rare_crop_prob > 0 needs rare_classes'):
        load_train_config(None, tiny_overrides(cityscapes_tree, tmp_path, rare_crop_prob=0.3))
