"""The assembled pipeline: NodeConfig -> model -> service, with a real (random-weight) model."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from segnode.config import EngineConfig
from segnode.data.labels import CAMVID
from segnode.errors import CheckpointError, ConfigError
from segnode.pipeline import assemble, imaging
from segnode.pipeline.assemble import build_service, load_labelled_model, RANDOM_WEIGHTS
from segnode.pipeline.config import LabelModelConfig, NodeConfig, RANDOM_CHECKPOINT
from segnode.pipeline.service import FrameResult, Outputs

EAGER = EngineConfig(backend='eager', device='cpu', precision='fp32', parity_gate=False)


def message(array: np.ndarray, encoding: str, stamp_ns: int) -> Any:
    stamp = SimpleNamespace(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    header = SimpleNamespace(stamp=stamp, frame_id='front_optical')
    return SimpleNamespace(header=header, **vars(imaging.array_to_fields(array, encoding)))


@pytest.fixture(scope='module')
def random_model() -> Any:
    return load_labelled_model(LabelModelConfig(path=RANDOM_CHECKPOINT))


def test_random_weights_only_when_asked_for_and_announced(random_model: Any) -> None:
    assert not random_model.trained and random_model.description == RANDOM_WEIGHTS
    assert random_model.table.names == CAMVID.names
    assert random_model.palette.shape == (11, 3)


def test_a_missing_bundled_model_is_an_error_not_random_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(assemble, 'DEFAULT_CHECKPOINT', tmp_path / 'camvid_mfaranet.pt')
    with pytest.raises(CheckpointError, match=r'bundled model .* missing .* model.path: random'):
        load_labelled_model(LabelModelConfig())


def test_label_overrides_must_match_the_class_count(random_model: Any) -> None:
    with pytest.raises(ConfigError, match='11 classes but model.class_names has 2 names'):
        load_labelled_model(LabelModelConfig(RANDOM_CHECKPOINT, class_names=('a', 'b')))


def test_missing_checkpoint_is_a_checkpoint_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError):
        load_labelled_model(LabelModelConfig(path=str(tmp_path / 'none.pt')))


def test_service_segments_every_encoding_at_input_resolution(random_model: Any) -> None:
    results: list[FrameResult] = []
    colours: list[np.ndarray] = []
    config = NodeConfig(camera_names=('front',), engine=EAGER)
    outputs = Outputs(
        color=lambda cam, header, rgb: colours.append(rgb),
        want_color=lambda cam: True,
        result=results.append,
    )
    svc, loaded = build_service(config, outputs, loaded=random_model)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (65, 97, 3), dtype=np.uint8)
    frames = [
        (rgb, 'rgb8'),
        (np.ascontiguousarray(rgb[..., ::-1]), 'bgr8'),
        (np.dstack([rgb, np.full((65, 97), 255, np.uint8)]), 'rgba8'),
        (rgb[..., 0], 'mono8'),
    ]
    for i, (array, encoding) in enumerate(frames):
        svc.submit('front', message(array, encoding, i))
        svc.process_once()
    assert len(results) == 4
    for i, r in enumerate(results):
        assert r.mask.shape == (65, 97) and r.mask.dtype == np.uint8
        assert r.stamp_ns == i and r.header.frame_id == 'front_optical'
        assert int(r.mask.max()) < 11
        expected = loaded.palette[r.mask]
        assert np.array_equal(colours[i], expected)
    # rgb8, bgr8 and rgba8 carry the same picture: the same mask.
    assert np.array_equal(results[0].mask, results[1].mask)
    assert np.array_equal(results[0].mask, results[2].mask)
