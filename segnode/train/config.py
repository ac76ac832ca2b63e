"""Training and evaluation configs: frozen dataclasses, YAML files and key=value overrides."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from segnode.config import config_from_dict, read_yaml
from segnode.errors import ConfigError

__all__ = [
    'AMP_MODES',
    'CLASS_WEIGHTS',
    'EvalConfig',
    'RUN_KEYS',
    'RENAMED_KEYS',
    'TrainConfig',
    'current_keys',
    'load_train_config',
    'parse_overrides',
]

AMP_MODES = ('none', 'bf16', 'fp16')
CLASS_WEIGHTS = ('none', 'enet', 'median')  # segnode/train/class_weights.py
DATASETS = ('cityscapes', 'camvid', 'camvid32', 'folder')
# Keys that may change between a run and its resumption (everything else must match).
RUN_KEYS = frozenset(
    {
        'data_root',
        'classes',
        'workers',
        'device',
        'out_dir',
        'checkpoint_every',
        'keep_last',
        'val_every',
        'val_limit',
        'log_every',
        'tensorboard',
        'resume',
        'state_copy',
        'stop_at',
    }
)

# Keys renamed since (old -> new). A config that still uses an old key is refused with one line
# naming the new key; training states and checkpoint recipes written before keep the old key
# and are read with current_keys. ``calibration_images`` became ``equalizer_images`` when
# "calibration" came to mean INT8 quantisation only (the equalizers' constants are measured).
RENAMED_KEYS = {'calibration_images': 'equalizer_images'}


def current_keys(values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a stored config or recipe with renamed keys under their current names."""
    return {RENAMED_KEYS.get(k, k): v for k, v in values.items()}


def _refuse_renamed(values: Mapping[str, Any]) -> None:
    old = sorted(k for k in values if k in RENAMED_KEYS)
    if old:
        raise ConfigError(f"key '{old[0]}' was renamed; use '{RENAMED_KEYS[old[0]]}'")


def _pair(value: tuple[int, ...], name: str, allow_empty: bool) -> None:
    if allow_empty and not value:
        return
    if len(value) != 2 or min(value) < 32:
        raise ConfigError(f'{name} must be [H, W] with both >= 32, got {list(value)}')


def _check_choice(value: str, choices: Sequence[str], name: str) -> None:
    if value not in choices:
        raise ConfigError(f'{name} must be one of {", ".join(choices)}, got {value!r}')


@dataclass(frozen=True)
class TrainConfig:
    """One training run (config/train/*.yaml; every key can be overridden as key=value).

    Attributes:
        dataset: ``cityscapes``, ``camvid``, ``camvid32`` or ``folder``.
        data_root: Dataset root folder.
        classes: Class table YAML of the ``folder`` dataset.
        train_split: Split trained on.
        val_split: Split validated on (``''``: no validation).
        resize: [H, W] every pair is resized to before augmentation; [] keeps native size.
        crop: Training crop [H, W].
        scale_range: Random scale range.
        rotate: Maximum rotation in degrees.
        rotate_prob: Probability of a rotation.
        flip: Random horizontal flip with probability 0.5.
        rare_classes: Class names whose pixels ``rare_crop_prob`` of the crops contain.
        rare_crop_prob: Share of crops drawn around a pixel of a ``rare_classes`` class present
            in the image (0: the recipe's uniform crops).
        photometric: Brightness, contrast, saturation and hue jitter after the crop (not in
            the recipe; ``segnode.data.transforms.photometric_jitter``).
        train_limit: Train on the first N images only (0: all; smoke tests).
        width: Decoder width.
        equalizers: Scale Equalizers (``false`` trains the ablation baseline).
        per_channel_equalizers: Per-channel equalizer constants.
        pretrained: ImageNet ResNet-18 file (deep-stem or torchvision); ``''``: from scratch.
        init: segnode checkpoint or training state (``state/iter_*.pt``) whose weights (and
            measured equalizer constants) the run starts from: a second training phase, or
            fine-tuning on other data; its optimiser and schedule are not taken; tensors whose
            shape differs (another class count) keep their fresh initialisation.
        equalizer_images: Images per pass measuring the equalizer statistics (0: the whole
            training split).
        batch_size: Images per GPU (per process) and micro-batch.
        accumulate: Micro-batches per optimiser step (gradient accumulation).
        workers: Data loader worker processes per GPU.
        epochs: Training length in epochs (used when ``max_iters`` is 0).
        max_iters: Training length in iterations (optimiser steps); 0: from ``epochs``.
        lr: Backbone learning rate; the rest uses ``lr * head_lr_mult``.
        head_lr_mult: Learning-rate multiplier of everything but the backbone.
        momentum: SGD momentum.
        weight_decay: Weight decay on every parameter (BN and biases included).
        poly_power: Poly schedule exponent, updated every iteration.
        warmup_iters: Linear learning-rate warm-up over the first N iterations (0: none).
        grad_clip: Maximum gradient norm (0: no clipping).
        amp: ``none``, ``bf16`` or ``fp16`` (with a gradient scaler).
        channels_last: Channels-last memory format.
        sync_bn: SyncBatchNorm when training on more than one CUDA device.
        ohem_thresh: OHEM probability threshold.
        ohem_min_kept: OHEM minimum kept pixels per GPU batch.
        boundary_weight: Boundary BCE weight.
        attention_weight: Edge-attention CE weight.
        attention_thresh: Edge-attention raw-logit threshold.
        class_weights: Class weights of the fused CE and OHEM terms from the training
            labels' frequencies: ``none`` (the recipe), ``enet`` or ``median``
            (segnode/train/class_weights.py).
        seed: Seed of initialisation, equalizer statistics, sampling, augmentation and dropout.
        device: ``auto``, ``cpu``, ``cuda`` (each process uses cuda:LOCAL_RANK).
        out_dir: Run folder (checkpoints, logs, metrics).
        checkpoint_every: Write the training state every N iterations.
        keep_last: Training-state files kept.
        val_every: Validate every N iterations (0: at the end only; -1: never).
        val_limit: Validate on the first N images (0: all).
        log_every: Log every N iterations.
        tensorboard: Write TensorBoard events when tensorboard is installed.
        resume: ``''`` (fresh run), ``auto`` (latest state in out_dir, if any, else in
            state_copy) or a file.
        state_copy: A second folder, one per run and best outside the work tree, that always
            holds a copy of the latest training state (``''``: none).
        stop_at: End this invocation after N iterations without writing anything more, as if
            the job were killed (0: run to ``max_iters``); for tests and preemptible jobs.
    """

    dataset: str = 'cityscapes'
    data_root: str = ''
    classes: str = ''
    train_split: str = 'train'
    val_split: str = 'val'
    resize: tuple[int, ...] = ()
    crop: tuple[int, ...] = (1024, 1024)
    scale_range: tuple[float, ...] = (0.5, 2.0)
    rotate: float = 10.0
    rotate_prob: float = 0.5
    flip: bool = True
    rare_classes: tuple[str, ...] = ()
    rare_crop_prob: float = 0.0
    photometric: bool = False
    train_limit: int = 0
    width: int = 128
    equalizers: bool = True
    per_channel_equalizers: bool = False
    pretrained: str = ''
    init: str = ''
    equalizer_images: int = 0
    batch_size: int = 7
    accumulate: int = 1
    workers: int = 2
    epochs: int = 200
    max_iters: int = 0
    lr: float = 0.005
    head_lr_mult: float = 10.0
    momentum: float = 0.9
    weight_decay: float = 5e-4
    poly_power: float = 0.9
    warmup_iters: int = 0
    grad_clip: float = 0.0
    amp: str = 'none'
    channels_last: bool = False
    sync_bn: bool = True
    ohem_thresh: float = 0.7
    ohem_min_kept: int = 100_000
    boundary_weight: float = 0.3
    attention_weight: float = 0.1
    attention_thresh: float = 0.8
    class_weights: str = 'none'
    seed: int = 0
    device: str = 'auto'
    out_dir: str = 'runs/train'
    checkpoint_every: int = 1000
    keep_last: int = 3
    val_every: int = 0
    val_limit: int = 0
    log_every: int = 10
    tensorboard: bool = True
    resume: str = ''
    state_copy: str = ''
    stop_at: int = 0

    def __post_init__(self) -> None:
        """Validate choices and ranges."""
        _check_choice(self.dataset, DATASETS, 'dataset')
        _check_choice(self.amp, AMP_MODES, 'amp')
        _check_choice(self.class_weights, CLASS_WEIGHTS, 'class_weights')
        _check_choice(self.device.partition(':')[0], ('auto', 'cpu', 'cuda'), 'device')
        _pair(self.crop, 'crop', allow_empty=False)
        _pair(self.resize, 'resize', allow_empty=True)
        low_high = self.scale_range
        if len(low_high) != 2 or not 0 < low_high[0] <= low_high[1]:
            raise ConfigError(f'scale_range must be [low, high], 0 < low <= high: {low_high}')
        for name in ('batch_size', 'accumulate', 'checkpoint_every', 'keep_last', 'log_every'):
            if getattr(self, name) < 1:
                raise ConfigError(f'{name} must be >= 1, got {getattr(self, name)}')
        for name in (
            'workers',
            'epochs',
            'max_iters',
            'train_limit',
            'equalizer_images',
            'val_limit',
            'ohem_min_kept',
            'stop_at',
            'warmup_iters',
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f'{name} must be >= 0, got {getattr(self, name)}')
        if self.epochs == 0 and self.max_iters == 0:
            raise ConfigError('set epochs or max_iters (both are 0)')
        if self.lr <= 0 or self.head_lr_mult <= 0:
            raise ConfigError(
                f'lr and head_lr_mult must be > 0, got {self.lr}, {self.head_lr_mult}'
            )
        if self.pretrained and self.init:
            raise ConfigError(
                'give pretrained (an ImageNet backbone) or init (a segnode checkpoint), not both'
            )
        if not 0.0 <= self.rare_crop_prob <= 1.0:
            raise ConfigError(f'rare_crop_prob must be in [0, 1], got {self.rare_crop_prob}')
        if self.rare_crop_prob > 0 and not self.rare_classes:
            raise ConfigError('rare_crop_prob > 0 needs rare_classes (class names)')
        if self.val_every < -1:
            raise ConfigError(f'val_every must be >= -1, got {self.val_every}')
        if self.state_copy and Path(self.state_copy).resolve() == Path(self.out_dir).resolve():
            raise ConfigError('state_copy must be another folder than out_dir (it keeps one file)')


@dataclass(frozen=True)
class EvalConfig:
    """One evaluation (``segnode eval``).

    Attributes:
        checkpoint: segnode checkpoint.
        dataset: Dataset layout (as ``TrainConfig.dataset``).
        data_root: Dataset root.
        split: Split evaluated.
        classes: Class table YAML of the ``folder`` dataset.
        scales: Image scales; several are averaged (softmax probabilities).
        flip: Also average the horizontally flipped prediction.
        window: Sliding window [H, W] (stride ``stride_ratio`` of it); [] whole image.
        stride_ratio: Window stride as a fraction of the window (2/3 officially).
        resize: Resize images and labels to [H, W] first (nearest for labels).
        limit: Evaluate the first N images (0: all).
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
    """

    checkpoint: str = ''
    dataset: str = 'cityscapes'
    data_root: str = ''
    split: str = 'val'
    classes: str = ''
    scales: tuple[float, ...] = (1.0,)
    flip: bool = False
    window: tuple[int, ...] = ()
    stride_ratio: float = 2 / 3
    resize: tuple[int, ...] = ()
    limit: int = 0
    device: str = 'auto'

    def __post_init__(self) -> None:
        """Validate choices and ranges."""
        _check_choice(self.dataset, DATASETS, 'dataset')
        _pair(self.window, 'window', allow_empty=True)
        _pair(self.resize, 'resize', allow_empty=True)
        if not self.scales or min(self.scales) <= 0:
            raise ConfigError(f'scales must be positive numbers, got {list(self.scales)}')
        if not 0 < self.stride_ratio <= 1:
            raise ConfigError(f'stride_ratio must be in (0, 1], got {self.stride_ratio}')


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``['key=value', ...]`` -> dict; values are parsed as YAML (``crop=[64,64]``)."""
    result: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition('=')
        if not sep or not key:
            raise ConfigError(f'override {item!r} is not key=value')
        try:
            result[key.strip()] = yaml.safe_load(value) if value.strip() else ''
        except yaml.YAMLError as err:
            raise ConfigError(f'override {item!r}: {err}') from err
    return result


def _read_yaml(path: Path) -> dict[str, Any]:
    data = read_yaml(path, 'training config') or {}
    if not isinstance(data, dict):
        raise ConfigError(f'{path}: expected a mapping of keys to values')
    return data


def load_train_config(path: str | Path | None, overrides: Sequence[str] = ()) -> TrainConfig:
    """A ``TrainConfig`` from a YAML file (or the defaults) and key=value overrides.

    Raises:
        ConfigError: Unreadable file, unknown key or bad value (the message names it).
    """
    data = _read_yaml(Path(path)) if path else {}
    given = parse_overrides(overrides)
    try:
        return _train_config({**data, **given})
    except ConfigError as err:
        blame_file = bool(path)
        if path and given:  # a mistake typed on the command line is not the file's
            try:
                _train_config(data)
            except ConfigError:
                pass
            else:
                blame_file = False
        where = f'{path}: ' if blame_file else 'command line: ' if given else ''
        raise ConfigError(f'{where}{err}') from err


def _train_config(values: Mapping[str, Any]) -> TrainConfig:
    _refuse_renamed(values)
    return config_from_dict(TrainConfig, values)
