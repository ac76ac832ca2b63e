"""Training configs: the shipped YAML files, key=value overrides and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from segnode.config import config_to_dict
from segnode.errors import ConfigError
from segnode.train.config import load_train_config, parse_overrides

CONFIGS = Path(__file__).resolve().parents[2] / 'config' / 'train'


def test_cityscapes_config_is_the_official_recipe() -> None:
    cfg = load_train_config(CONFIGS / 'cityscapes.yaml')
    assert cfg.dataset == 'cityscapes' and cfg.crop == (1024, 1024)
    assert (cfg.batch_size, cfg.epochs, cfg.lr, cfg.head_lr_mult) == (7, 200, 0.005, 10.0)
    assert (cfg.momentum, cfg.weight_decay, cfg.poly_power) == (0.9, 5e-4, 0.9)
    assert (cfg.ohem_thresh, cfg.ohem_min_kept) == (0.7, 100_000)
    assert (cfg.boundary_weight, cfg.attention_weight, cfg.attention_thresh) == (0.3, 0.1, 0.8)
    assert cfg.scale_range == (0.5, 2.0) and cfg.rotate == 10.0 and cfg.rotate_prob == 0.5


def test_camvid_config_and_its_720x960_variant() -> None:
    cfg = load_train_config(CONFIGS / 'camvid.yaml')
    assert (cfg.dataset, cfg.crop, cfg.batch_size, cfg.epochs) == ('camvid', (360, 480), 8, 200)
    variant = load_train_config(
        CONFIGS / 'camvid.yaml', ['dataset=camvid32', 'crop=[720,960]', 'ohem_min_kept=75000']
    )
    assert variant.crop == (720, 960) and variant.lr == cfg.lr


def test_overrides_parse_yaml_values() -> None:
    assert parse_overrides(['crop=[64,64]', 'amp=bf16', 'equalizers=false', 'lr=0.01']) == {
        'crop': [64, 64],
        'amp': 'bf16',
        'equalizers': False,
        'lr': 0.01,
    }
    cfg = load_train_config(CONFIGS / 'camvid.yaml', ['crop=[64,96]', 'equalizers=false'])
    assert cfg.crop == (64, 96) and cfg.equalizers is False


@pytest.mark.parametrize(
    ('override', 'message'),
    [
        ('bogus=1', "unknown key .*'bogus'"),
        ('crop=[16,16]', r'crop must be \[H, W\] with both >= 32'),
        ('amp=fp8', 'amp must be one of none, bf16, fp16'),
        ('batch_size=two', 'batch_size must be of type'),
        ('nonsense', 'is not key=value'),
    ],
)
def test_bad_overrides_name_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_train_config(CONFIGS / 'camvid.yaml', [override])


@pytest.mark.parametrize('name', sorted(p.name for p in CONFIGS.glob('*.yaml')))
def test_every_shipped_recipe_loads(name: str) -> None:
    cfg = load_train_config(CONFIGS / name)
    assert cfg.max_iters or cfg.epochs


def test_the_from_scratch_recipe_uses_one_rate_and_a_warm_up() -> None:
    phase1 = load_train_config(CONFIGS / 'camvid-scratch.yaml')
    phase2 = load_train_config(CONFIGS / 'camvid-scratch-finish.yaml')
    assert phase1.head_lr_mult == phase2.head_lr_mult == 1.0
    assert phase1.warmup_iters > 0 and phase2.warmup_iters > 0 and not phase1.pretrained
    assert tuple(phase1.crop) == (180, 240) and tuple(phase2.crop) == (360, 480)
    assert phase2.init and not phase2.pretrained


def test_the_long_schedule_phases_differ_only_where_documented() -> None:
    phase1 = config_to_dict(load_train_config(CONFIGS / 'camvid-scratch-long.yaml'))
    phase2 = config_to_dict(load_train_config(CONFIGS / 'camvid-scratch-long-finish.yaml'))
    differ = {k for k in phase1 if phase1[k] != phase2[k]}
    assert differ == {
        'resize', 'crop', 'init', 'max_iters', 'lr', 'warmup_iters', 'ohem_min_kept',
        'out_dir', 'checkpoint_every', 'val_every',
    }  # fmt: skip
    assert phase1['class_weights'] == 'enet' and phase1['train_split'] == 'trainval'
    assert phase2['init'] == phase1['out_dir'] + '/model_final.pt'


def test_a_mistake_on_the_command_line_is_not_blamed_on_the_file() -> None:
    with pytest.raises(ConfigError, match=r"^command line: unknown key 'btach_size'"):
        load_train_config(CONFIGS / 'camvid.yaml', ['btach_size=4'])
    with pytest.raises(ConfigError, match=r'^command line: crop must be'):
        load_train_config(CONFIGS / 'camvid.yaml', ['crop=[8,8]'])


def test_a_renamed_key_names_the_new_one(tmp_path: Path) -> None:
    old = tmp_path / 'old.yaml'
    old.write_text((CONFIGS / 'camvid.yaml').read_text() + 'calibration_images: 8\n')
    renamed = "key 'calibration_images' was renamed; use 'equalizer_images'"
    with pytest.raises(ConfigError, match=f'^{old}: {renamed}$'):
        load_train_config(old)
    with pytest.raises(ConfigError, match=f'^command line: {renamed}$'):
        load_train_config(CONFIGS / 'camvid.yaml', ['calibration_images=8'])
    assert load_train_config(CONFIGS / 'camvid.yaml', ['equalizer_images=8']).equalizer_images == 8
