"""Choose, build (or load), gate and export engines.

``build_engine`` turns a model and an :class:`~segnode.config.EngineConfig` into a gated
:class:`~segnode.engine.base.Engine`:

* A named backend and precision is built (or loaded) and gated, or refused; never replaced.
* ``auto`` (backend, precision or both) is resolved by measurement (``segnode.engine.choice``):
  every candidate pair is built and gated, those that pass are timed, the fastest is used, and
  the choice is remembered so the next start builds the winner only. Each candidate's outcome
  (time, or why it was refused) is in the report and the log.
* With ``artifact_dir`` the engine is loaded from an exported artifact whose key matches
  exactly; a mismatching artifact is refused naming what differs. TensorRT engines are never
  built on the spot unless ``build_if_missing`` is set (they take minutes and belong to
  ``segnode export``); the other backends build in memory when no artifact exists.
* Every engine passes the parity gate (``segnode.engine.parity``) on its masks before it is
  used, loaded artifacts included; the gate's reference is computed once per build.
* ``strict`` raises on the first failed build instead of going on; a candidate that is merely
  unavailable (no CUDA, not installed, a precision the backend does not run) is still skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
import logging
from pathlib import Path
import time
from typing import Any

import torch
from torch import Tensor

from segnode.config import EngineConfig, resolve_device
from segnode.engine.artifacts import (
    artifact_path,
    find_artifact,
    read_manifest,
    write_manifest,
)
from segnode.engine.backends import Backend, BACKEND_TABLE
from segnode.engine.base import (
    Attempt,
    BuildOptions,
    Engine,
    EngineReport,
)
from segnode.engine.choice import (
    Candidate,
    candidates,
    choice_dir,
    choice_key,
    read_choice,
    resolve_precision,
    time_calls,
    write_choice,
)
from segnode.engine.job import Job
from segnode.errors import EngineBuildError, EngineUnavailable, SegnodeError
from segnode.files import atomic_write
from segnode.model.mfaranet import MFARANet

__all__ = ['build_engine', 'export_engine']

log = logging.getLogger(__name__)


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
    """Build (or load) the engine ``config`` asks for, or the fastest of ``auto``, gated.

    Args:
        model: The unfolded eval-mode model (as loaded from a checkpoint).
        config: Backend, device, precision, artifacts, gate.
        height: Frame height (the optimal one of a dynamic engine).
        width: Frame width.
        batch: Frames per call (one per camera).
        checkpoint_sha256: Hash of the checkpoint file for artifact keys; defaults to a hash
            of the weights.
        reference: The model the gate compares with (default: ``model``).
        calibration: uint8 frames (M, H, W, 3) for INT8 quantisation (default: read from
            ``config.calibration_images``).

    Returns:
        The engine and the report of every candidate tried.

    Raises:
        EngineUnavailable: The named backend (or every candidate of ``auto``) cannot run here,
            or a TensorRT engine is missing and may not be built.
        EngineBuildError: A build or the parity gate failed (``strict``, or a named pair).
    """
    job = Job.create(
        model, config, batch, height, width, checkpoint_sha256, calibration, reference
    )
    device = resolve_device(config.device)
    if config.threads and device.type == 'cpu':
        torch.set_num_threads(config.threads)  # eager and torch-compile; onnxruntime's own
    int8 = calibration is not None or bool(config.calibration_images)
    pairs = candidates(config, device, int8=int8)
    report = EngineReport(device=str(device))
    engine = _chosen(job, pairs, device, report)
    report.backend, report.precision = engine.backend, engine.precision
    log.info('engine %s ready (%s)', engine, report.summary())
    return engine, report


def _chosen(
    job: Job, pairs: list[Candidate], device: torch.device, report: EngineReport
) -> Engine:
    """The remembered winner when it still builds, else a fresh measurement (remembered)."""
    c = job.config
    key = choice_key(c, device, checkpoint_sha256=job.digest, batch=job.batch,
                     height=job.height, width=job.width, pairs=pairs)  # fmt: skip
    if len(pairs) == 1:
        engine = _one(job, pairs[0], device, report, named=True)
        assert engine is not None  # a named pair raises instead
        report.attempts.append(Attempt(f'{pairs[0][0]} {pairs[0][1]}', True, '', report.build_s))
        return engine
    folder = choice_dir(c)
    remembered = read_choice(folder, key) if c.remember_choice else None
    if remembered is not None:
        pair, path = remembered
        log.info('engine auto: %s %s, as measured before (%s)', *pair, path)
        engine = _one(job, pair, device, report, named=False)
        if engine is not None:
            report.attempts.append(Attempt(f'{pair[0]} {pair[1]}', True, '', report.build_s))
            report.notes.append(f'chosen by an earlier measurement: {path}')
            return engine
        log.warning('engine auto: the remembered %s %s failed; measuring again', *pair)
    engine, pair = _measure(job, pairs, device, report)
    if c.remember_choice:
        measured = [a.__dict__ for a in report.attempts]
        try:
            path = write_choice(folder, key, pair, measured)
            report.notes.append(f'choice remembered in {path}')
        except OSError as err:
            log.warning('engine auto: cannot remember the choice in %s: %s', folder, err)
    return engine


def _measure(
    job: Job, pairs: list[Candidate], device: torch.device, report: EngineReport
) -> tuple[Engine, Candidate]:
    """Build, gate and time every candidate; keep the fastest."""
    log.info('engine auto: measuring %d candidates at %dx%dx%d (%s)', len(pairs), job.batch,
             job.height, job.width, ', '.join(f'{b} {p}' for b, p in pairs))  # fmt: skip
    frames = job.example().to(device)  # timing does not depend on the pixels
    best: tuple[float, Engine, Candidate, EngineReport] | None = None
    for pair in pairs:
        trial = EngineReport(device=str(device))
        engine = _one(job, pair, device, trial, named=False)
        report.attempts.extend(trial.attempts)
        if engine is None:
            continue
        ms = time_calls(engine, frames, device)
        report.attempts.append(Attempt(f'{pair[0]} {pair[1]}', True, '', trial.build_s, ms))
        log.info('engine %s %s: %.1f ms per call (built in %.1f s)', *pair, ms, trial.build_s)
        if best is None or ms < best[0]:
            best = (ms, engine, pair, trial)
        del engine
    if best is None:
        raise EngineUnavailable(f'no engine could be built: {report.summary()}')
    ms, engine, pair, winner = best
    report.parity, report.artifact = winner.parity, winner.artifact
    report.notes.extend(winner.notes)  # e.g. the artifact it was loaded from
    timed = sorted((a for a in report.attempts if a.ms is not None), key=lambda a: a.ms or 0.0)
    runner_up = f'; next {timed[1].backend} at {timed[1].ms:.1f} ms' if len(timed) > 1 else ''
    report.notes.append(f'chosen by measurement: {pair[0]} {pair[1]} at {ms:.1f} ms{runner_up}')
    return engine, pair


def _one(
    job: Job, pair: Candidate, device: torch.device, report: EngineReport, *, named: bool
) -> Engine | None:
    """Build and gate one candidate; None (recorded in the report) when it is not used."""
    name, precision = pair
    label = f'{name} {precision}'
    start = time.perf_counter()
    try:
        return _attempt(job, name, precision, device, report)
    except SegnodeError as err:
        report.refused(label, err, time.perf_counter() - start)
        if named or (job.config.strict and not isinstance(err, EngineUnavailable)):
            raise
        log.log(_quiet(err), 'engine %s not used: %s', label, err)
    except Exception as err:  # the one broad except: the engine fallback (docs/engine.md)
        report.refused(label, err, time.perf_counter() - start)
        if named or job.config.strict:
            raise EngineBuildError(f'{label} build failed: {type(err).__name__}: {err}') from err
        log.warning('engine %s not used: %s: %s', label, type(err).__name__, err)
    return None


def _quiet(err: SegnodeError) -> int:
    """A precision a backend does not run is expected; a refused build is worth a warning."""
    return logging.INFO if isinstance(err, EngineUnavailable) else logging.WARNING


def _attempt(
    job: Job, name: str, precision: str, device: torch.device, report: EngineReport
) -> Engine:
    """Load the artifact, else build and save one, else build in memory, as the config says."""
    spec = BACKEND_TABLE[name]
    options = job.options(device, precision)
    spec.check(options)
    c = job.config
    start = time.perf_counter()
    path = _find(job, spec, options)
    if path is not None:
        engine = _load(job, spec, options, path, report)
    elif c.artifact_dir and c.build_if_missing:
        exported = _export(job, spec, options, Path(c.artifact_dir))
        engine, report.parity = exported.engine, exported.parity
        report.artifact = str(exported.path)
        report.notes.append(f'built and saved {exported.path.name}')
    elif not spec.BUILDS_ON_THE_SPOT and not c.build_if_missing:
        raise EngineUnavailable(_missing(job, spec, options, c.artifact_dir))
    else:
        engine = _fresh(job, spec, options, report)
    report.build_s = time.perf_counter() - start
    return engine


def _find(job: Job, spec: Backend, options: BuildOptions) -> Path | None:
    """The matching artifact in ``artifact_dir``; None when there is none (or no folder).

    A mismatching artifact is refused (``EngineBuildError``) unless ``build_if_missing``.
    """
    c = job.config
    if not c.artifact_dir:
        return None
    try:
        return find_artifact(c.artifact_dir, job.key(spec.NAME, options))
    except EngineBuildError:
        if not c.build_if_missing:
            raise
        return None


def _load(
    job: Job, spec: Backend, options: BuildOptions, path: Path, report: EngineReport
) -> Engine:
    """Load an exported artifact and gate it again (the export's figures are kept beside)."""
    log.info('loading %s artifact %s', spec.NAME, path)
    engine = job.engine(spec, spec.load(path, options, job.example()), options)
    stored = read_manifest(path.with_suffix('.json')).get('parity') or {}
    if job.config.parity_gate:
        report.parity = job.gate(spec, engine, options).to_dict()
        report.parity['export_time'] = stored
    report.artifact = str(path)
    report.notes.append(f'loaded {path.name}')
    return engine


def _fresh(job: Job, spec: Backend, options: BuildOptions, report: EngineReport) -> Engine:
    took = spec.BUILD_TIME
    if options.precision == 'int8' and options.calibration is not None:
        took = f'calibrating on {len(options.calibration)} frames: a minute or two on a CPU'
    if took:
        log.info(
            'building %s %s engine for %dx%dx%d in memory (%s)',
            spec.NAME,
            options.precision,
            job.batch,
            job.height,
            job.width,
            took,
        )
    engine = job.engine(spec, spec.build(job.graph(spec), job.example(), options), options)
    if job.config.parity_gate:
        report.parity = job.gate(spec, engine, options).to_dict()
    return engine


def _missing(job: Job, spec: Backend, options: BuildOptions, folder: str) -> str:
    where = f'in {folder}' if folder else '(engine.artifact_dir is not set)'
    dyn = ' --dynamic' if job.config.dynamic else ''
    dyn += ' --confidence' if job.config.confidence else ''
    return (
        f'no {spec.TITLE} engine for {job.batch}x{job.height}x{job.width} {options.precision} '
        f'{where}; build it on this machine with: segnode export --checkpoint CKPT '
        f'--backend {spec.NAME} --size {job.height} {job.width} --batch {job.batch} '
        f'--precision {options.precision}{dyn} --out {folder or "DIR"} '
        '(or set engine.build_if_missing: true)'
    )


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
    """Build, gate and save one artifact (with its manifest) for ``config.backend``.

    Nothing is written when the build or the gate fails.

    Returns:
        The artifact's path and the build report.
    """
    if config.backend == 'auto':
        raise EngineBuildError('export needs a named backend (tensorrt, onnxruntime, ...)')
    job = Job.create(model, config, batch, height, width, checkpoint_sha256, calibration)
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
        artifact=str(exported.path),
        build_s=exported.build_s,
    )
    return exported.path, report


@dataclass(frozen=True)
class _Exported:
    path: Path
    engine: Engine
    parity: dict[str, Any]
    build_s: float


def _export(job: Job, spec: Backend, options: BuildOptions, out_dir: Path) -> _Exported:
    """Export, load the written file, gate it, and only then move it into place."""
    key = job.key(spec.NAME, options)
    path = artifact_path(out_dir, key)
    engines: list[Engine] = []
    parity: dict[str, Any] = {}
    start = time.perf_counter()

    def write(tmp: Path) -> None:
        spec.export(job.graph(spec), job.example(), tmp, options)
        engine = job.engine(spec, spec.load(tmp, options, job.example()), options)
        engines.append(engine)
        if job.config.parity_gate:
            parity.update(job.gate(spec, engine, options).to_dict())

    atomic_write(path, write, spec.COMPANIONS)
    seconds = time.perf_counter() - start
    write_manifest(path, key, parity=parity or None, build_s=round(seconds, 1))
    return _Exported(path, engines[0], parity, seconds)
