"""DDP: two gloo processes on a CPU equal one process with the same global batch.

Two ranks with 1 image each are compared with one process accumulating 2 micro-batches of 1
image: same samples in the same roles (rank r <-> micro-batch r), same augmentation and dropout
seeds, same per-GPU BN batches and per-GPU losses (OHEM min_kept, the summed edge-attention
term), and DDP's gradient average equals accumulation of loss / 2. Only the floating-point
summation order differs. BN running statistics are not compared: DDP broadcasts rank 0's,
accumulation updates them twice. (SyncBN needs CUDA; on a CPU each rank keeps plain BN.)
"""

from __future__ import annotations

import os
from pathlib import Path
import socket
import subprocess
import sys

from conftest import tiny_overrides
import torch

from segnode.model.checkpoint import read_checkpoint
from segnode.train.build import build_training_model
from segnode.train.config import load_train_config

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 300


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return int(s.getsockname()[1])


def _env(rank: int, world: int, port: int) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    env.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        MASTER_ADDR='127.0.0.1',
        MASTER_PORT=str(port),
        GLOO_SOCKET_IFNAME='lo',
    )
    return env


def _run(world: int, overrides: list[str]) -> None:
    port = _free_port()
    cmd = [sys.executable, '-m', 'segnode', 'train', *overrides]
    procs = [
        subprocess.Popen(
            cmd,
            cwd=REPO,
            env=_env(r, world, port),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in range(world)
    ]
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=TIMEOUT_S)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, out in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out[-3000:]


def test_two_gloo_processes_match_one_process(cityscapes_tree: Path, tmp_path: Path) -> None:
    common = {
        'batch_size': 1,
        'equalizer_images': 2,
        'val_every': -1,
        'train_limit': 4,
        'max_iters': 2,
    }
    _run(2, tiny_overrides(cityscapes_tree, tmp_path / 'ddp', **common))
    _run(1, tiny_overrides(cityscapes_tree, tmp_path / 'one', accumulate=2, **common))
    ddp, meta = read_checkpoint(tmp_path / 'ddp' / 'model_final.pt')
    one, _ = read_checkpoint(tmp_path / 'one' / 'model_final.pt')
    assert meta['recipe']['world_size'] == 2
    assert meta['equalizers']['data']['images'] == 2
    skip = ('running_mean', 'running_var', 'num_batches_tracked')
    compared = [k for k in one if not k.endswith(skip)]
    for key in compared:
        torch.testing.assert_close(ddp[key], one[key], rtol=1e-4, atol=1e-5, msg=key)
    equalizers = [k for k in compared if 'equalizers' in k]
    assert len(equalizers) == 36 and len(compared) > 150
    for key in equalizers:  # statistics merged over ranks == statistics in one process
        torch.testing.assert_close(ddp[key], one[key], rtol=1e-6, atol=1e-7, msg=key)
    cfg = load_train_config(None, tiny_overrides(cityscapes_tree, tmp_path / 'init', **common))
    initial = build_training_model(cfg, 19).state_dict()
    moved = max(float((one[k] - initial[k]).abs().max()) for k in compared if 'heads' in k)
    gap = max(float((ddp[k] - one[k]).abs().max()) for k in compared)
    assert moved > 100 * gap  # training moved the weights far more than DDP and one process differ
