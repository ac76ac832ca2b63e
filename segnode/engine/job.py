"""One engine build, resolved once: the model, the config, the shape, and the gate's reference.

A :class:`Job` is what every candidate of a build shares (``segnode.engine.build``): the
options and artifact key of each (backend, precision), the frame graph each backend compiles
(one folded copy of the model per graph), and the parity gate with its eager fp32 reference,
computed once per device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import logging
import math

import torch
from torch import nn, Tensor

from segnode.config import EngineConfig
from segnode.engine.artifacts import artifact_key, calibration_key, weights_sha256
from segnode.engine.backends import Backend
from segnode.engine.base import BuildOptions, Engine, Runner
from segnode.engine.graph import deploy_model, frame_dims, frame_graph
from segnode.engine.parity import (
    check_parity,
    GateThresholds,
    image_frames,
    image_paths,
    ParityResult,
    prepare_reference,
    Reference,
)
from segnode.errors import EngineBuildError
from segnode.model.mfaranet import MFARANet

__all__ = ['Job']

log = logging.getLogger('segnode.engine.build')  # one logger for everything a build says


@dataclass
class Job:
    """Everything one attempt needs, resolved once.

    Two things are filled in on first use and kept: the INT8 calibration frames (read from
    ``calibration_images`` when not given) and the gate's reference (one device per build).
    """

    model: MFARANet
    reference_model: MFARANet
    config: EngineConfig
    batch: int
    height: int
    width: int
    digest: str
    calibration: Tensor | None
    # (device, reference): one device per build, so the reference of the last one is kept
    gate_reference: tuple[torch.device, Reference] | None = field(
        default=None, compare=False, repr=False
    )

    @classmethod
    def create(
        cls,
        model: MFARANet,
        config: EngineConfig,
        batch: int,
        height: int,
        width: int,
        checkpoint_sha256: str,
        calibration: Tensor | None,
        reference: MFARANet | None = None,
    ) -> Job:
        """Check the frame shape and put the models in eval mode."""
        frame_dims(batch, height, width, dynamic=config.dynamic)
        return cls(
            model=model.eval(),
            reference_model=(reference or model).eval(),
            config=config,
            batch=batch,
            height=height,
            width=width,
            digest=checkpoint_sha256 or weights_sha256(model),
            calibration=calibration,
        )

    def calibration_frames(self) -> Tensor | None:
        """The INT8 calibration frames: given, else read from ``calibration_images``."""
        c = self.config
        if self.calibration is None and c.calibration_images:
            paths = image_paths(c.calibration_images, 1, what='engine.calibration_images')
            frames = image_frames(
                paths[: c.calibration_frames], self.height, self.width, bgr=c.bgr
            )
            self.calibration = torch.from_numpy(frames)
        return self.calibration

    def options(self, device: torch.device, precision: str) -> BuildOptions:
        c = self.config
        return BuildOptions(
            device=device,
            precision=precision,
            dynamic=c.dynamic,
            max_side=c.max_side,
            threads=c.threads,
            cuda_graphs=c.cuda_graphs,
            strict=c.strict,
            calibration=self.calibration_frames() if precision == 'int8' else None,
            openvino_device=c.openvino_device,
        )

    def key(self, backend: str, options: BuildOptions) -> dict[str, object]:
        return artifact_key(
            backend=backend,
            checkpoint_sha256=self.digest,
            batch=self.batch,
            height=self.height,
            width=self.width,
            dynamic=self.config.dynamic,
            max_side=self.config.max_side,
            input_size=self.config.input_size,
            bgr=self.config.bgr,
            precision=options.precision,
            device=options.device,
            calibration=None
            if options.calibration is None
            else calibration_key(
                options.calibration, self.config.calibration_images or 'frames given by the caller'
            ),
            confidence=self.config.confidence,
        )

    def graph(self, spec: Backend) -> nn.Module:
        deployed = deploy_model(self.model, fold_bn=True)  # the one copy of this graph
        c = self.config
        return frame_graph(
            deployed,
            bgr=c.bgr,
            input_size=c.input_size,
            mask_dtype=spec.MASK_DTYPE,
            confidence=c.confidence,
            copy=False,
        )

    def example(self) -> Tensor:
        return torch.zeros(self.batch, self.height, self.width, 3, dtype=torch.uint8)

    def engine(self, spec: Backend, runner: Runner, options: BuildOptions) -> Engine:
        return Engine(
            spec.NAME,
            runner,
            device=options.device,
            precision=options.precision,
            batch=self.batch,
            height=self.height,
            width=self.width,
            dynamic=self.config.dynamic,
            max_side=self.config.max_side,
            confidence=self.config.confidence,
        )

    def reference(self, device: torch.device) -> Reference:
        """The gate's frames and eager fp32 verdict on them, computed once per build."""
        if self.gate_reference is None or self.gate_reference[0] != device:
            c = self.config
            reference = prepare_reference(
                self.reference_model,
                math.ceil(c.parity_frames / self.batch) * self.batch,
                self.height,
                self.width,
                bgr=c.bgr,
                input_size=c.input_size,
                images=c.parity_images,
                labels=c.parity_labels,
                device=device,
            )
            self.gate_reference = (device, reference)
        return self.gate_reference[1]

    def gate(self, spec: Backend, engine: Engine, options: BuildOptions) -> ParityResult:
        result = check_parity(
            engine.outputs if engine.confidence else engine,
            self.reference(options.device),
            batch=self.batch,
            device=options.device,
            thresholds=GateThresholds.of(self.config),
        )
        if not result.passed:
            raise EngineBuildError(
                f'{spec.NAME} {options.precision} engine refused by the parity gate against '
                f'eager fp32: {result.describe()}'
            )
        log.info('%s %s passed the parity gate: %s', spec.NAME, options.precision,
                 result.describe())  # fmt: skip
        return result
