"""Images per second of one CPU training step (forward, MJS loss, backward, SGD), side by side.

Each variant runs in its own process (the memory allocator is chosen at process start): the
full-width MFARANet with equalizers and boundary heads, batch 8, random input and labels, one
warm-up step, then ``--steps`` timed steps. Data loading is not included (the training loader
keeps up with the model on 2 cores at these sizes). Variants are
``SIZE:PRECISION:LAYOUT:ALLOCATOR``, e.g. ``360x480:bf16:cl:tcmalloc``; the allocator is
``glibc`` (the default) or ``tcmalloc`` (``libtcmalloc_minimal.so.4``, Debian package
libtcmalloc-minimal4, preloaded).

    .venv/bin/python bench/train_step.py --json bench/results/train_step.json

``--profile VARIANT`` instead runs torch.profiler over the timed steps of one variant and
prints where a step's time goes: the operators with the largest share of self CPU time
(forward and backward kernels are separate rows), with ``--json`` their table.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import platform
import subprocess
import sys
import time

from segnode.cli.allocator import find_tcmalloc
from segnode.files import write_json

TOP = 15
DEFAULT = (
    '360x480:fp32:nchw:glibc',
    '360x480:fp32:cl:tcmalloc',
    '360x480:bf16:cl:glibc',
    '360x480:bf16:nchw:tcmalloc',
    '360x480:bf16:cl:tcmalloc',
    '240x320:bf16:cl:tcmalloc',
    '180x240:bf16:cl:tcmalloc',
)


def one(variant: str, steps: int, profile: bool = False) -> dict[str, object]:
    """Images/s of ``variant`` in this process, and with ``profile`` its top operators."""
    import torch

    from segnode.model.mfaranet import build_mfaranet
    from segnode.train.losses import MJSLoss

    size, precision, layout, _ = variant.split(':')
    h, w = (int(v) for v in size.split('x'))
    batch, channels_last = 8, layout == 'cl'
    torch.manual_seed(0)
    model = build_mfaranet(num_classes=11, equalizers=True, boundary_heads=True).train()
    criterion = MJSLoss(0.7, int(19000 * h * w / (360 * 480)), 0.3, 0.1, 0.8)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, h, w)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 11, (batch, h, w))
    boundary = (torch.rand(batch, 1, h, w) > 0.9).float()

    def step() -> None:
        optimizer.zero_grad()
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=precision == 'bf16'):
            outputs = model(x, aux=True)
        loss, _ = criterion(outputs, labels, boundary)
        loss.backward()
        optimizer.step()

    step()
    if profile:
        from torch.profiler import profile as profiler
        from torch.profiler import ProfilerActivity

        with profiler(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(steps):
                step()
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events)
        top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:TOP]
        return {
            'operators': [
                {
                    'name': e.key,
                    'share': round(e.self_cpu_time_total / total, 4),
                    'ms_per_step': round(e.self_cpu_time_total / 1000 / steps, 1),
                    'calls_per_step': e.count // steps,
                }
                for e in top
            ]
        }
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return {'images_per_second': steps * batch / (time.perf_counter() - start)}


def main() -> int:
    """Run every variant in a subprocess and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--variants', nargs='+', default=list(DEFAULT))
    parser.add_argument('--steps', type=int, default=3)
    parser.add_argument('--json', type=Path)
    parser.add_argument('--profile', metavar='VARIANT', help='profile one variant instead')
    parser.add_argument('--child', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one(args.child, args.steps, args.profile == args.child)))
        return 0
    rows = []
    tcmalloc = find_tcmalloc()
    for variant in [args.profile] if args.profile else args.variants:
        env = dict(os.environ)
        env.pop('LD_PRELOAD', None)
        if variant.endswith(':tcmalloc'):
            if tcmalloc is None:
                print(f'{variant}: skipped (libtcmalloc_minimal.so.4 not installed)')
                continue
            env['LD_PRELOAD'] = tcmalloc
        command = [sys.executable, __file__, '--child', variant, '--steps', str(args.steps)]
        if args.profile:
            command += ['--profile', variant]
        out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        child = json.loads(out.stdout.strip().splitlines()[-1])
        if args.profile:
            rows = child['operators']
            for op in rows:
                print(f'{op["share"]:6.1%} {op["ms_per_step"]:8.1f} ms/step  {op["name"]}')
            continue
        speed = child['images_per_second']
        rows.append({'variant': variant, 'images_per_second': round(speed, 3)})
        print(f'{variant:<28} {speed:6.2f} images/s', flush=True)
    result = {
        'profile': args.profile,
        'rows': rows,
        'steps': args.steps,
        'batch': 8,
        'machine': platform.processor() or platform.machine(),
        'cpus': os.cpu_count(),
        'command': 'python bench/train_step.py ' + ' '.join(sys.argv[1:]),
    }
    if args.json:
        write_json(result, args.json)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
