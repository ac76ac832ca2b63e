"""Dataset layouts on generated trees (and real CamVid): pairing, label mapping, errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from segnode.data.dataset import SegmentationDataset
from segnode.data.labels import CAMVID32_COLOURS, CITYSCAPES_LABEL_TO_TRAIN
from segnode.data.sources import scan_dataset, seen_in_training
from segnode.data.transforms import TrainAugment
from segnode.errors import DatasetError, SegnodeError


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


def _image(h: int = 32, w: int = 48) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_cityscapes_label_ids_go_through_the_official_mapping(tmp_path: Path) -> None:
    label_ids = np.array([[7, 8, 26, 0], [33, 24, 4, 23]], dtype=np.uint8)
    _write(tmp_path / 'leftImg8bit/val/ulm/ulm_000000_000019_leftImg8bit.png', _image(2, 4))
    _write(tmp_path / 'gtFine/val/ulm/ulm_000000_000019_gtFine_labelIds.png', label_ids)
    spec = scan_dataset('cityscapes', tmp_path, 'val')
    sample = SegmentationDataset(spec, boundary=False)[0]
    assert sample['label'].tolist() == [[0, 1, 13, 255], [18, 11, 255, 10]]
    assert sample['image'].shape == (3, 2, 4)
    assert len(CITYSCAPES_LABEL_TO_TRAIN) == 19


def test_cityscapes_prefers_train_ids(tmp_path: Path) -> None:
    stem = 'ulm_000000_000019'
    _write(tmp_path / f'leftImg8bit/train/ulm/{stem}_leftImg8bit.png', _image(2, 2))
    _write(tmp_path / f'gtFine/train/ulm/{stem}_gtFine_labelIds.png', np.full((2, 2), 7, np.uint8))
    _write(
        tmp_path / f'gtFine/train/ulm/{stem}_gtFine_labelTrainIds.png',
        np.full((2, 2), 5, np.uint8),
    )
    spec = scan_dataset('cityscapes', tmp_path, 'train')
    assert SegmentationDataset(spec, boundary=False)[0]['label'].unique().tolist() == [5]


def test_cityscapes_errors_name_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match='Cityscapes root not found'):
        scan_dataset('cityscapes', tmp_path / 'nope', 'train')
    _write(tmp_path / 'leftImg8bit/train/ulm/ulm_000000_000019_leftImg8bit.png', _image())
    with pytest.raises(DatasetError, match="Cityscapes gtFine split 'train' not found"):
        scan_dataset('cityscapes', tmp_path, 'train')
    (tmp_path / 'gtFine/train/ulm').mkdir(parents=True)
    with pytest.raises(DatasetError, match='1 of 1 Cityscapes images .* have neither'):
        scan_dataset('cityscapes', tmp_path, 'train')
    with pytest.raises(DatasetError, match="image split 'val' not found.*contains: train"):
        scan_dataset('cityscapes', tmp_path, 'val')


def _camvid_tree(root: Path, label_size: tuple[int, int] = (32, 48)) -> None:
    label = np.zeros(label_size, dtype=np.uint8)
    label[:, :10] = 11
    label[0, 0] = 3
    _write(root / 'train/0001TP_000010.png', _image())
    _write(root / 'trainannot/0001TP_000010.png', label)


def test_camvid_void_becomes_ignore(tmp_path: Path) -> None:
    _camvid_tree(tmp_path)
    sample = SegmentationDataset(scan_dataset('camvid', tmp_path, 'train'))[0]
    assert sample['label'].unique().tolist() == [0, 3, 255]
    assert sample['boundary'].shape == (1, 32, 48)


def test_size_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    _camvid_tree(tmp_path, label_size=(30, 48))
    with pytest.raises(DatasetError, match=r'size mismatch: image .* is 48x32 but label .* 48x30'):
        scan_dataset('camvid', tmp_path, 'train')


def test_missing_label_file(tmp_path: Path) -> None:
    _camvid_tree(tmp_path)
    _write(tmp_path / 'train/0001TP_000020.png', _image())
    with pytest.raises(SegnodeError, match='1 of 2 images have no label file'):
        scan_dataset('camvid', tmp_path, 'train')


def test_camvid32_colours_map_to_eleven_classes(tmp_path: Path) -> None:
    names = [['Sky', 'Wall', 'LaneMkgsDriv'], ['SUVPickupTruck', 'Child', 'Void']]
    rgb = np.array([[CAMVID32_COLOURS[n] for n in row] for row in names], dtype=np.uint8)
    rgb[1, 2] = (1, 2, 3)  # not a CamVid colour -> ignore as well
    _write(tmp_path / 'val/0016E5_07959.png', _image(2, 3))
    _write(tmp_path / 'val_labels/0016E5_07959_L.png', rgb[:, :, ::-1].copy())
    sample = SegmentationDataset(scan_dataset('camvid32', tmp_path, 'val'), boundary=False)[0]
    assert sample['label'].tolist() == [[0, 1, 3], [8, 9, 255]]


def test_folder_dataset_with_yaml_class_table(tmp_path: Path) -> None:
    (tmp_path / 'classes.yaml').write_text(
        'name: yard\nclasses:\n  - {name: grass, color: [0, 255, 0], id: 10}\n  - {name: path}\n'
    )
    _write(tmp_path / 'train/images/a.jpg', _image(4, 4))
    _write(tmp_path / 'train/labels/a.png', np.array([[10, 1, 0, 7]] * 4, dtype=np.uint8))
    spec = scan_dataset('folder', tmp_path, 'train')
    assert spec.table.names == ('grass', 'path') and spec.table.dataset == 'yard'
    assert SegmentationDataset(spec)[0]['label'][0].tolist() == [0, 1, 255, 255]


def test_folder_dataset_bad_class_table(tmp_path: Path) -> None:
    (tmp_path / 'classes.yaml').write_text('classes:\n  - {name: a, colour: [1, 2, 3]}\n')
    with pytest.raises(DatasetError, match="classes\\[0\\] has unknown key 'colour'"):
        scan_dataset('folder', tmp_path, 'train')
    with pytest.raises(DatasetError, match='class table not found'):
        scan_dataset('folder', tmp_path, 'train', classes=tmp_path / 'missing.yaml')


def test_colour_label_given_to_an_id_layout(tmp_path: Path) -> None:
    _write(tmp_path / 'train/x.png', _image(4, 4))
    _write(tmp_path / 'trainannot/x.png', _image(4, 4))
    dataset = SegmentationDataset(scan_dataset('camvid', tmp_path, 'train'))
    with pytest.raises(DatasetError, match='has 3 channels; expected a single-channel'):
        dataset[0]


@pytest.mark.data
def test_real_camvid_splits(camvid_root: Path) -> None:
    train = scan_dataset('camvid', camvid_root, 'train')
    val = scan_dataset('camvid', camvid_root, 'val')
    assert (len(train.pairs), len(val.pairs)) == (367, 101)
    dataset = SegmentationDataset(train, augment=TrainAugment(crop=(360, 480)))
    sample = dataset[(0, 123)]
    assert sample['image'].shape == (3, 360, 480) and sample['boundary'].shape == (1, 360, 480)
    values = set(sample['label'].unique().tolist())
    assert values <= set(range(11)) | {255}
    assert np.array_equal(dataset[(0, 123)]['label'], sample['label'])  # seeded augmentation


def test_camvid_named_splits_hold_out_a_whole_sequence(tmp_path: Path) -> None:
    for split, stems in {
        'train': ['0001TP_006690', '0006R0_f02340', '0016E5_00390'],
        'val': ['0016E5_07959'],
    }.items():
        for stem in stems:
            _write(tmp_path / split / f'{stem}.png', _image(2, 2))
            _write(tmp_path / f'{split}annot' / f'{stem}.png', np.zeros((2, 2), np.uint8))

    def stems(split: str) -> list[str]:
        return [image.stem for image, _ in scan_dataset('camvid', tmp_path, split).pairs]

    assert stems('xseq-train') == ['0001TP_006690', '0016E5_00390']
    assert stems('xseq-val') == ['0006R0_f02340']
    assert stems('trainval') == [*stems('train'), '0016E5_07959']
    # how many frames a checkpoint trained on a split has seen, by path (CamVid names repeat
    # nowhere, but a folder dataset's may)
    frames = [
        tmp_path / 'val' / '..' / 'val' / '0016E5_07959.png',
        tmp_path / 'train' / '0006R0_f02340.png',
    ]
    seen = {
        split: seen_in_training({'dataset': 'camvid', 'train_split': split}, tmp_path, frames)
        for split in ('train', 'val', 'trainval', 'xseq-train', 'xseq-val', 'test', '')
    }
    assert seen == {'train': 1, 'val': 1, 'trainval': 2, 'xseq-train': 0, 'xseq-val': 1,
                    'test': 0, '': 0}  # fmt: skip
    (tmp_path / 'train' / '0006R0_f02340.png').unlink()
    with pytest.raises(DatasetError, match="CamVid split 'xseq-val' has no frame"):
        scan_dataset('camvid', tmp_path, 'xseq-val')


@pytest.mark.data
def test_camvid_cross_sequence_split_of_the_real_release(camvid_root: Path) -> None:
    specs = {
        s: scan_dataset('camvid', camvid_root, s) for s in ('xseq-train', 'xseq-val', 'trainval')
    }
    sequences = {
        s: {image.stem.split('_')[0] for image, _ in spec.pairs} for s, spec in specs.items()
    }
    assert sequences == {
        'xseq-train': {'0001TP', '0016E5'},
        'xseq-val': {'0006R0'},
        'trainval': {'0001TP', '0006R0', '0016E5'},
    }
    assert {s: len(spec.pairs) for s, spec in specs.items()} == {
        'xseq-train': 266,
        'xseq-val': 101,
        'trainval': 468,
    }
