"""Choose, build (or load), gate and export engines.

``build_engine`` turns a model and an :class:`~segnode.config.EngineConfig` into a gated
:class:`~segnode.engine.base.Engine`:

* ``backend: auto`` tries the backends fastest first (``AUTO_ORDER``: tensorrt,
  torch-compile, onnxruntime, eager; TensorRT is not tried on a CPU) and records why each one
  before the chosen one was not used; a named backend is used or refused, never replaced.
* With ``artifact_dir`` the engine is loaded from an exported artefact whose key matches
  exactly; a mismatching artefact is refused naming what differs. TensorRT engines are never
  built on the spot unless ``build_if_missing`` is set (they take minutes and belong to
  ``segnode export``); the other backends build in memory when no artefact exists.
* Every engine passes the parity gate (``segnode.engine.parity``) before it is returned.
  A fresh build is compared on masks and logits (a logits build of the same backend); an
  engine loaded from an artefact on masks, its logits having been checked at export time
  (the figures are in its manifest).
* ``strict`` raises on the first failed build instead of falling back; a backend that is
  merely unavailable (no CUDA, not installed) is still skipped by ``auto``.
"""

from __future__ import annotations

from dataclasses import dataclass
import logging
import math
from pathlib import Path
import time
from typing import Any

import numpy as np
import torch
from torch import nn, Tensor

from segnode.config import EngineConfig, resolve_device
from segnode.engine.artifacts import (
    artefact_key,
    artefact_path,
    find_artefact,
    read_manifest,
    weights_sha256,
    write_manifest,
)
from segnode.engine.backends import AUTO_ORDER, Backend, BACKEND_TABLE
from segnode.engine.base import (
    Attempt,
    BuildOptions,
    Engine,
    EngineReport,
    resolve_precision,
    Runner,
)
from segnode.engine.graph import deploy_model, frame_dims, frame_graph
from segnode.engine.parity import check_parity, gate_frames, ParityResult, reference_logits
from segnode.engine.tensorrt.backend import trt_versions
from segnode.errors import EngineBuildError, EngineUnavailable, SegnodeError
from segnode.files import atomic_write
from segnode.model.mfaranet import MFARANet

__all__ = ['build_engine', 'export_engine']

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Job:
    """Everything one attempt needs, resolved once."""

    model: MFARANet
    reference: MFARANet
    config: EngineConfig
    batch: int
    height: int
    width: int
    digest: str
    calibration: Tensor | None

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
    ) -> _Job:
        """Check the frame shape and put the models in eval mode."""
        frame_dims(batch, height, width, dynamic=config.dynamic)
        return cls(
            model=model.eval(),
            reference=(reference or model).eval(),
            config=config,
            batch=batch,
            height=height,
            width=width,
            digest=checkpoint_sha256 or weights_sha256(model),
            calibration=calibration,
        )

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
            calibration=self.calibration,
        )

    def key(self, backend: str, options: BuildOptions) -> dict[str, object]:
        versions = trt_versions() if backend == 'tensorrt' else None
        return artefact_key(
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
            versions=versions,
        )

    def graph(self, spec: Backend, *, logits: bool = False) -> nn.Module:
        deployed = deploy_model(self.model, fold_bn=True)  # the one copy of this graph
        c = self.config
        return frame_graph(
            deployed,
            bgr=c.bgr,
            input_size=c.input_size,
            logits=logits,
            mask_dtype=spec.MASK_DTYPE,
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
        )

    def gate(
        self, spec: Backend, engine: Engine, options: BuildOptions, *, logits: bool
    ) -> ParityResult:
        c = self.config
        count = math.ceil(c.parity_frames / self.batch) * self.batch
        frames_np, source = gate_frames(
            count, self.height, self.width, bgr=c.bgr, folder=c.parity_images
        )
        frames = torch.from_numpy(np.ascontiguousarray(frames_np))
        reference = reference_logits(
            self.reference, frames, bgr=c.bgr, input_size=c.input_size, device=options.device
        )
        logits_runner = (
            spec.build(self.graph(spec, logits=True), self.example(), options) if logits else None
        )
        result = check_parity(
            engine,
            logits_runner,
            reference,
            frames,
            batch=self.batch,
            device=options.device,
            source=source,
            min_agreement=c.min_agreement,
            min_cosine=c.min_cosine,
        )
        if not result.passed:
            raise EngineBuildError(
                f'{spec.NAME} {options.precision} engine refused by the parity gate against '
                f'eager fp32: {result.describe()}'
            )
        return result


@dataclass(frozen=True)
class _Exported:
    path: Path
    engine: Engine
    parity: dict[str, Any]
    build_s: float


def _export(job: _Job, spec: Backend, options: BuildOptions, out_dir: Path) -> _Exported:
    """Export, load the written file, gate it, and only then move it into place."""
    key = job.key(spec.NAME, options)
    path = artefact_path(out_dir, key)
    engines: list[Engine] = []
    parity: dict[str, Any] = {}
    start = time.perf_counter()

    def write(tmp: Path) -> None:
        spec.export(job.graph(spec), job.example(), tmp, options)
        engine = job.engine(spec, spec.load(tmp, options, job.example()), options)
        engines.append(engine)
        if job.config.parity_gate:
            parity.update(job.gate(spec, engine, options, logits=True).to_dict())

    atomic_write(path, write)
    seconds = time.perf_counter() - start
    write_manifest(path, key, parity=parity or None, build_s=round(seconds, 1))
    return _Exported(path, engines[0], parity, seconds)


def _attempt(job: _Job, name: str, device: torch.device, report: EngineReport) -> Engine:
    spec = BACKEND_TABLE[name]
    options = job.options(device, resolve_precision(job.config, device))
    spec.check(options)
    c = job.config
    start = time.perf_counter()
    if c.artifact_dir:
        try:
            path = find_artefact(c.artifact_dir, job.key(name, options))
        except EngineBuildError:
            if not c.build_if_missing:
                raise
            path = None
        if path is not None:
            log.info('loading %s artefact %s', name, path)
            engine = job.engine(spec, spec.load(path, options, job.example()), options)
            stored = read_manifest(path.with_suffix('.json')).get('parity') or {}
            if c.parity_gate:
                report.parity = job.gate(spec, engine, options, logits=False).to_dict()
                report.parity['export_time'] = stored
            report.artefact = str(path)
            report.notes.append(f'loaded {path.name}')
        elif c.build_if_missing:
            exported = _export(job, spec, options, Path(c.artifact_dir))
            engine, report.parity = exported.engine, exported.parity
            report.artefact = str(exported.path)
            report.notes.append(f'built and saved {exported.path.name}')
        elif name == 'tensorrt':
            raise EngineUnavailable(_missing(job, options, c.artifact_dir))
        else:
            engine = _fresh(job, spec, options, report)
    elif name == 'tensorrt' and not c.build_if_missing:
        raise EngineUnavailable(_missing(job, options, ''))
    else:
        engine = _fresh(job, spec, options, report)
    report.build_s = time.perf_counter() - start
    return engine


# What a build usually takes on a CPU at 360x480 to 512x1024 (docs/benchmarks.md), for the word
# said before it; eager is instant, so nothing is said for it.
_BUILD_TIME = {
    'torch-compile': 'about a minute; --backend eager starts at once',
    'onnxruntime': 'a few seconds',
    'tensorrt': 'minutes',
}


def _fresh(job: _Job, spec: Backend, options: BuildOptions, report: EngineReport) -> Engine:
    if spec.NAME in _BUILD_TIME:
        log.info(
            'building %s %s engine for %dx%dx%d in memory (%s)',
            spec.NAME,
            options.precision,
            job.batch,
            job.height,
            job.width,
            _BUILD_TIME[spec.NAME],
        )
    engine = job.engine(spec, spec.build(job.graph(spec), job.example(), options), options)
    if job.config.parity_gate:
        report.parity = job.gate(spec, engine, options, logits=True).to_dict()
    return engine


def _missing(job: _Job, options: BuildOptions, folder: str) -> str:
    where = f'in {folder}' if folder else '(engine.artifact_dir is not set)'
    dyn = ' --dynamic' if job.config.dynamic else ''
    return (
        f'no TensorRT engine for {job.batch}x{job.height}x{job.width} {options.precision} '
        f'{where}; build it on this machine with: segnode export --checkpoint CKPT '
        f'--backend tensorrt --size {job.height} {job.width} --batch {job.batch} '
        f'--precision {options.precision}{dyn} --out {folder or "DIR"} '
        '(or set engine.build_if_missing: true)'
    )


def build_engine(
    model: MFARANet,
    config: EngineConfig,
    *,
    height: int,
    width: int,
    batch: int = 1,
    checkpoint_sha256: str = '',
    reference: MFARANet | None = None,
    calibration: Tensor | None = None,
) -> tuple[Engine, EngineReport]:
    """Build (or load) the engine ``config`` asks for and gate it.

    Args:
        model: The unfolded eval-mode model (as loaded from a checkpoint).
        config: Backend, device, precision, artefacts, gate.
        height: Frame height (the optimal one of a dynamic engine).
        width: Frame width.
        batch: Frames per call (one per camera).
        checkpoint_sha256: Hash of the checkpoint file for artefact keys; defaults to a hash
            of the weights.
        reference: The model the gate compares with (default: ``model``).
        calibration: uint8 frames (M, H, W, 3) for INT8 quantisation.

    Returns:
        The engine and the report of every backend tried.

    Raises:
        EngineUnavailable: The named backend (or every one ``auto`` tried) cannot run here,
            or a TensorRT engine is missing and may not be built.
        EngineBuildError: A build or the parity gate failed (``strict``, or a named backend).
    """
    job = _Job.create(
        model, config, batch, height, width, checkpoint_sha256, calibration, reference
    )
    device = resolve_device(config.device)
    if config.threads and device.type == 'cpu':
        torch.set_num_threads(config.threads)  # eager and torch-compile; onnxruntime's own
    auto = config.backend == 'auto'
    candidates = AUTO_ORDER[device.type] if auto else (config.backend,)
    report = EngineReport(device=str(device))
    for name in candidates:
        start = time.perf_counter()
        try:
            engine = _attempt(job, name, device, report)
        except SegnodeError as err:
            report.refused(name, err, time.perf_counter() - start)
            if not auto or (config.strict and not isinstance(err, EngineUnavailable)):
                raise
            log.warning('engine %s not used: %s', name, err)
            continue
        except Exception as err:  # the one broad except: the engine fallback (docs/engine.md)
            report.refused(name, err, time.perf_counter() - start)
            if not auto or config.strict:
                raise EngineBuildError(
                    f'{name} build failed: {type(err).__name__}: {err}'
                ) from err
            log.warning('engine %s not used: %s: %s', name, type(err).__name__, err)
            continue
        report.attempts.append(Attempt(name, True, '', time.perf_counter() - start))
        report.backend, report.precision = name, engine.precision
        log.info('engine %s ready (%s)', engine, report.summary())
        return engine, report
    raise EngineUnavailable(f'no engine could be built: {report.summary()}')


def export_engine(
    model: MFARANet,
    config: EngineConfig,
    out_dir: str | Path,
    *,
    height: int,
    width: int,
    batch: int = 1,
    checkpoint_sha256: str = '',
    calibration: Tensor | None = None,
) -> tuple[Path, EngineReport]:
    """Build, gate and save one artefact (with its manifest) for ``config.backend``.

    Nothing is written when the build or the gate fails.

    Returns:
        The artefact's path and the build report.
    """
    if config.backend == 'auto':
        raise EngineBuildError('export needs a named backend (tensorrt, onnxruntime, ...)')
    job = _Job.create(model, config, batch, height, width, checkpoint_sha256, calibration)
    device = resolve_device(config.device)
    spec = BACKEND_TABLE[config.backend]
    options = job.options(device, resolve_precision(config, device))
    spec.check(options)
    exported = _export(job, spec, options, Path(out_dir))
    report = EngineReport(
        backend=spec.NAME,
        device=str(device),
        precision=options.precision,
        attempts=[Attempt(spec.NAME, True, '', exported.build_s)],
        parity=exported.parity,
        artefact=str(exported.path),
        build_s=exported.build_s,
    )
    return exported.path, report
