"""The training run: build, backbone, seeded decoder, equalizer statistics, train (DDP-ready).

Every source of randomness is a pure function of the run seed and the position in the run:
augmentation seeds come from the sampler (seed, epoch, sample), and before every micro-batch
the torch RNG (dropout) is reseeded from (seed, iteration, micro-batch x world + rank). A run
killed and resumed from a training state therefore ends with the same weights as an
uninterrupted one, and N DDP processes match one process accumulating N micro-batches.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
import logging
from pathlib import Path
import time
from typing import Any, cast

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm
import yaml

from segnode.config import config_to_dict
from segnode.errors import ConfigError, SegnodeError
from segnode.model.checkpoint import save_checkpoint
from segnode.model.mfaranet import MFARANet
from segnode.train.build import (
    build_criterion,
    build_optimizer,
    build_training_model,
    emulated_amp,
    poly_schedule,
)
from segnode.train.config import RUN_KEYS, TrainConfig
from segnode.train.distributed import (
    all_reduce_sum,
    barrier,
    Context,
    init_distributed,
    shutdown,
)
from segnode.train.equalize import measure_for_training
from segnode.train.evaluate import evaluate
from segnode.train.interrupt import CtrlC
from segnode.train.loader import make_loader, open_datasets
from segnode.train.logger import MetricsLog
from segnode.train.sampler import sample_seed, ShardSampler
from segnode.train.state import (
    copy_state,
    get_rng_state,
    latest_state,
    load_state,
    save_state,
    set_rng_state,
    state_path,
)

__all__ = ['TrainResult', 'Trainer', 'check_resume_config', 'train']

_LOG = logging.getLogger('segnode.train')
STEP_STREAM = 2
AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}


@dataclass(frozen=True)
class TrainResult:
    """What a run produced."""

    out_dir: Path
    iterations: int
    max_iters: int
    checkpoint: Path | None
    best_miou: float | None
    images_per_second: float
    unknown_label_pixels: int = 0


def train(cfg: TrainConfig) -> TrainResult:
    """Run (or resume) training as configured; joins torchrun's process group if any."""
    ctx = init_distributed(cfg.device)
    try:
        return Trainer(cfg, ctx).run()
    finally:
        shutdown(ctx)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, (tuple, list)) else value


def check_resume_config(saved: dict[str, Any], cfg: TrainConfig, path: Path) -> None:
    """Refuse to resume a state written with different recipe settings.

    Raises:
        ConfigError: A non-run key (anything outside ``RUN_KEYS``) differs.
    """
    current = config_to_dict(cfg)
    diffs = [
        f'{k}={_plain(saved[k])!r} (now {_plain(v)!r})'
        for k, v in current.items()
        if k not in RUN_KEYS and k in saved and _plain(saved[k]) != _plain(v)
    ]
    if diffs:
        raise ConfigError(
            f'{path} was written with other settings: {", ".join(diffs[:4])}; resume with '
            'the same config or start a new out_dir'
        )


def _resume_path(cfg: TrainConfig) -> Path | None:
    if not cfg.resume:
        return None
    if cfg.resume == 'auto':
        found = latest_state(cfg.out_dir)
        if found is None and cfg.state_copy:
            found = latest_state(cfg.state_copy)
            if found is not None:
                _LOG.info('%s holds no training state: resuming from its copy', cfg.out_dir)
        return found
    return Path(cfg.resume)


class Trainer:
    """One training run on this process (rank ``ctx.rank`` of ``ctx.world_size``)."""

    def __init__(self, cfg: TrainConfig, ctx: Context) -> None:
        self.cfg, self.ctx = cfg, ctx
        self.out = Path(cfg.out_dir)
        resume = _resume_path(cfg)
        state = load_state(resume) if resume else None
        if state is not None and resume is not None:
            check_resume_config(state['config'], cfg, resume)
        self.data = open_datasets(cfg)
        self.sampler = ShardSampler(
            len(self.data.train), rank=ctx.rank, world_size=ctx.world_size, seed=cfg.seed
        )
        self.per_step = cfg.batch_size * cfg.accumulate  # samples per rank and iteration
        self.steps_per_epoch = self.sampler.per_rank // self.per_step
        if self.steps_per_epoch == 0:
            raise ConfigError(
                f'{len(self.data.train)} training images are fewer than one global batch '
                f'({self.per_step * ctx.world_size} = batch_size x accumulate x world size)'
            )
        self.max_iters = cfg.max_iters or cfg.epochs * self.steps_per_epoch
        self.loader = make_loader(
            self.data.train, self.sampler, cfg.batch_size, cfg.workers, cfg.seed
        )
        self.model = self._prepare_model(state)
        self.net: nn.Module = self.model
        if ctx.distributed:
            ids = [ctx.device.index] if ctx.device.type == 'cuda' else None
            self.net = DistributedDataParallel(self.model, device_ids=ids)
        self.criterion = build_criterion(cfg, self.data.train)
        self.optimizer = build_optimizer(self.model, cfg)
        self.scheduler = poly_schedule(
            self.optimizer, self.max_iters, cfg.poly_power, cfg.warmup_iters
        )
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=cfg.amp == 'fp16')
        if (slow := emulated_amp(cfg.amp, ctx.device)) and ctx.is_main:
            _LOG.warning(slow)
        self.iteration, self.best_miou = 0, cast(float | None, None)
        if state is not None:
            self._restore(state)
            _LOG.info('resumed from %s at iteration %d', resume, self.iteration)
        self.log = MetricsLog(self.out, enabled=ctx.is_main, tensorboard=cfg.tensorboard)
        self._tick = 0.0
        self._timed = [0, 0.0]  # images, seconds (excluding the first step after a start)
        self.unknown_labels = 0  # training pixels with ids no class has (this invocation)
        self.ctrl_c = CtrlC()

    def _prepare_model(self, state: dict[str, Any] | None) -> MFARANet:
        cfg, ctx = self.cfg, self.ctx
        model = build_training_model(cfg, self.data.table.num_classes, load_weights=state is None)
        if ctx.distributed and ctx.device.type == 'cuda' and cfg.sync_bn:
            convert = nn.SyncBatchNorm.convert_sync_batchnorm
            converted = convert(model)  # type: ignore[no-untyped-call]
            assert converted is model  # the root is not a BN, so it is converted in place
        model.to(ctx.device)
        if cfg.channels_last:
            model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        if state is not None:  # the equalizer constants come with the weights: not measured again
            model.load_state_dict(state['model'])
            model.equalizer_provenance = dict(state['equalizers'])
        elif cfg.equalizers and model.equalizer_provenance.get('state') == 'measured':
            _LOG.info('equalizer constants come from %s: not measured again', cfg.init)
        elif cfg.equalizers:
            t0 = time.perf_counter()
            provenance = measure_for_training(model, self.data.train, cfg, ctx)
            _LOG.info(
                'measured %d scale equalizers in %d levels on %d images (%.1f s)',
                len(provenance['equalizers']),
                provenance['levels'],
                provenance['data']['images'],
                time.perf_counter() - t0,
            )
        return model

    def _restore(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state['optimizer'])
        self.scheduler.load_state_dict(state['scheduler'])
        self.scaler.load_state_dict(state['scaler'])
        set_rng_state(state['rng'])
        self.iteration = int(state['iteration'])
        self.best_miou = state.get('best_miou')

    def run(self) -> TrainResult:
        """Train to ``max_iters`` (or ``stop_at``), validate, write the final checkpoint."""
        final = self.out / 'model_final.pt'
        if self.iteration >= self.max_iters and final.is_file():
            _LOG.info('this run already finished at iteration %d: %s', self.iteration, final)
            return TrainResult(
                self.out, self.iteration, self.max_iters, final, self.best_miou, float('nan')
            )
        self._announce()
        stop = min(self.cfg.stop_at or self.max_iters, self.max_iters)
        bar = tqdm(
            total=self.max_iters,
            initial=self.iteration,
            unit='it',
            desc='train',
            disable=not self.ctx.is_main,
            dynamic_ncols=True,
        )
        try:
            with self.ctrl_c.watch():
                while self.iteration < stop and not self._stopping():
                    self._train_epoch(bar, stop)
        finally:
            bar.close()
        if self.ctrl_c.pressed:
            self._save_interrupted()
        checkpoint = self._finish() if self.iteration >= self.max_iters else None
        images, seconds = self._timed
        return TrainResult(
            self.out,
            self.iteration,
            self.max_iters,
            checkpoint,
            self.best_miou,
            images / seconds if seconds > 0 else float('nan'),
            self.unknown_labels,
        )

    def _announce(self) -> None:
        if not self.ctx.is_main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        plain = {k: _plain(v) for k, v in config_to_dict(self.cfg).items()}
        (self.out / 'config.yaml').write_text(yaml.safe_dump(plain, sort_keys=False))
        _LOG.info(
            '%s %s: %d images, %d iterations/epoch, %d iterations, global batch %d '
            '(%d per process x %d accumulation x %d processes) on %s',
            self.cfg.dataset,
            self.cfg.train_split,
            len(self.data.train),
            self.steps_per_epoch,
            self.max_iters,
            self.per_step * self.ctx.world_size,
            self.cfg.batch_size,
            self.cfg.accumulate,
            self.ctx.world_size,
            self.ctx.device,
        )

    def _train_epoch(self, bar: tqdm[Any], stop: int) -> None:
        epoch, step = divmod(self.iteration, self.steps_per_epoch)
        self.sampler.set_epoch(epoch, step * self.per_step)
        micro: list[dict[str, torch.Tensor]] = []
        self._tick = time.perf_counter()
        first = True
        for batch in self.loader:
            micro.append(batch)
            if len(micro) < self.cfg.accumulate:
                continue
            parts = self._step(micro)
            micro = []
            self.iteration += 1
            self._after_step(parts, bar, timed=not first)
            first = False
            if self.iteration >= stop or self.iteration % self.steps_per_epoch == 0:
                break
            if self._stopping():
                break

    def _step(self, micro: list[dict[str, torch.Tensor]]) -> dict[str, float]:
        cfg, ctx = self.cfg, self.ctx
        self.net.train()
        self.optimizer.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        for m, batch in enumerate(micro):
            torch.manual_seed(
                sample_seed(cfg.seed, STEP_STREAM, self.iteration, m * ctx.world_size + ctx.rank)
            )
            image = batch['image'].to(ctx.device, non_blocking=True)
            if cfg.channels_last:
                image = image.contiguous(memory_format=torch.channels_last)
            label = batch['label'].to(ctx.device, non_blocking=True)
            boundary = batch['boundary'].to(ctx.device, non_blocking=True)
            self._count_unknown_labels(int(batch['unknown_labels'].sum()))
            last = m == len(micro) - 1
            sync: Any = nullcontext()
            if isinstance(self.net, DistributedDataParallel) and not last:
                sync = self.net.no_sync()  # all-reduce only on the last micro-batch
            with sync:
                with torch.autocast(
                    ctx.device.type, dtype=AMP_DTYPES.get(cfg.amp), enabled=cfg.amp != 'none'
                ):
                    outputs = self.net(image, aux=True)
                loss, parts = self.criterion(outputs, label, boundary)
                if not torch.isfinite(loss):
                    raise SegnodeError(f'non-finite loss at iteration {self.iteration}: {parts}')
                self.scaler.scale(loss / len(micro)).backward()
            parts['loss'] = float(loss.detach())
            for key, value in parts.items():
                totals[key] = totals.get(key, 0.0) + value / len(micro)
        if cfg.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            totals['grad_norm'] = float(grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return totals

    def _stopping(self) -> bool:
        """Whether to stop now; under torchrun every rank stops at the same iteration."""
        if not self.ctx.distributed:
            return self.ctrl_c.pressed
        flag = torch.tensor([float(self.ctrl_c.pressed)], device=self.ctx.device)
        return bool(all_reduce_sum(self.ctx, flag)[0] > 0)

    def _save_interrupted(self) -> None:
        saved = latest_state(self.out)
        if self.iteration and (saved is None or saved != state_path(self.out, self.iteration)):
            self._save_state()
        _LOG.info(
            'interrupted at iteration %d of %d: state saved; continue with resume=auto out_dir=%s',
            self.iteration,
            self.max_iters,
            self.out,
        )
        raise KeyboardInterrupt

    def _count_unknown_labels(self, pixels: int) -> None:
        if pixels and not self.unknown_labels:
            _LOG.warning(
                'training labels hold ids outside 0..%d (not 255): trained as ignore; the '
                'count is in the final line and metrics.jsonl',
                self.data.table.num_classes - 1,
            )
        self.unknown_labels += pixels

    def _after_step(self, parts: dict[str, float], bar: tqdm[Any], timed: bool) -> None:
        now = time.perf_counter()
        if timed:
            self._timed[0] += self.per_step * self.ctx.world_size
            self._timed[1] += now - self._tick
        self._tick = now
        it = self.iteration
        speed = self._timed[0] / self._timed[1] if self._timed[1] else float('nan')
        bar.update(1)
        bar.set_postfix(loss=f'{parts["loss"]:.3f}', img_s=f'{speed:.2f}')
        if it % self.cfg.log_every == 0 or it == self.max_iters:
            lrs = {f'lr_{g["name"]}': g['lr'] for g in self.optimizer.param_groups}
            unknown = {'unknown_label_pixels': self.unknown_labels} if self.unknown_labels else {}
            self.log.write('train', it, {**parts, **lrs, 'images_per_second': speed, **unknown})
        if it % self.cfg.checkpoint_every == 0:
            self._save_state()
        if self.cfg.val_every > 0 and it % self.cfg.val_every == 0 and it < self.max_iters:
            self._validate()

    def _save_state(self) -> None:
        if self.ctx.is_main:
            state = {
                'model': self.model.state_dict(),
                'equalizers': dict(self.model.equalizer_provenance),
                'optimizer': self.optimizer.state_dict(),
                'scheduler': self.scheduler.state_dict(),
                'scaler': self.scaler.state_dict(),
                'rng': get_rng_state(),
                'sampler': {
                    'epoch': self.iteration // self.steps_per_epoch,
                    'position': (self.iteration % self.steps_per_epoch) * self.per_step,
                },
                'best_miou': self.best_miou,
                'config': config_to_dict(self.cfg),
            }
            path = save_state(self.out, self.iteration, state, self.cfg.keep_last)
            if self.cfg.state_copy:
                copy_state(path, self.cfg.state_copy)
        barrier(self.ctx)

    def _validate(self) -> float | None:
        if self.data.val is None:
            return None
        k = self.data.table.num_classes
        matrix = evaluate(self.model, self.data.val, k, self.ctx.device, ctx=self.ctx)
        summary = matrix.summary(self.data.table.names)
        miou = summary['miou']
        _LOG.info('iteration %d: val mIoU %.4f', self.iteration, miou)
        if summary['unknown_label_pixels']:
            _LOG.warning(
                'val labels: %d pixels hold ids outside 0..%d (not 255), scored as ignore',
                summary['unknown_label_pixels'],
                k - 1,
            )
        self.log.write('val', self.iteration, summary)
        if self.best_miou is None or miou > self.best_miou:
            self.best_miou = miou
            self._save_model('model_best.pt', {'val_miou': miou, 'iteration': self.iteration})
        return float(miou)

    def _save_model(self, name: str, metrics: dict[str, Any]) -> Path:
        path = self.out / name
        if self.ctx.is_main:
            table = self.data.table
            recipe = {
                **{k: _plain(v) for k, v in config_to_dict(self.cfg).items()},
                'iterations': self.iteration,
                'world_size': self.ctx.world_size,
            }
            save_checkpoint(
                self.model,
                path,
                class_names=table.names,
                palette=table.palette,
                dataset=table.dataset,
                recipe=recipe,
                metrics={**metrics, 'val_split': self.cfg.val_split},
                source=f'segnode train, {self.out}, iteration {self.iteration}',
            )
        barrier(self.ctx)
        return path

    def _finish(self) -> Path:
        miou = self._validate() if self.cfg.val_every >= 0 else None
        if self.iteration % self.cfg.checkpoint_every:
            self._save_state()
        metrics: dict[str, Any] = {'iteration': self.iteration}
        if miou is not None:
            metrics['val_miou'] = miou
        path = self._save_model('model_final.pt', metrics)
        self.log.close()
        _LOG.info('wrote %s', path)
        return path
