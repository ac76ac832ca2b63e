"""Every hostile file through the command line, as a user meets it: time, peak memory, one line.

The checkpoints and params files are test/hostile.py's cases (issue 28), the bags a few
damaged ones built here (a cut-off MCAP, a chunk with a flipped byte, an empty
metadata.yaml). Each case runs ``segnode info CKPT`` or ``segnode replay BAG [--params P]``
in a process of its own and is judged on what a user sees: the exit status (2 with one
``segnode: error:`` line for a refusal; 0 for a bag whose damage is counted in the report),
whether a traceback appeared, its wall time and its peak resident memory (the child's own
``ru_maxrss``, from ``os.wait4``).

    .venv/bin/python bench/hostile_files.py --json bench/results/hostile_files.json
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import platform
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'test'))

import hostile  # noqa: E402, I100 (test/ is put on sys.path just above)
import hostile_frames  # noqa: E402

from segnode.files import write_json  # noqa: E402
from segnode.pipeline.imaging import encode_compressed  # noqa: E402
from segnode.replay.bag_writer import (  # noqa: E402
    BagWriter,
    make_compressed,
    make_header,
    make_image,
)

SEGNODE = [sys.executable, '-m', 'segnode']
CPU = ['--backend', 'eager', '--precision', 'fp32', '--device', 'cpu', '--no-progress']


def run(args: list[str], expect: int) -> dict[str, Any]:
    """One command in a child process: status, last line, wall seconds, peak MB, verdict."""
    with tempfile.TemporaryFile() as err_file:
        start = time.perf_counter()
        proc = subprocess.Popen([*SEGNODE, *args], stdout=subprocess.DEVNULL, stderr=err_file)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak memory
        seconds = time.perf_counter() - start
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        err_file.seek(0)
        err = err_file.read().decode(errors='replace').strip()
    lines = err.splitlines()
    one_line = expect != 2 or (len(lines) == 1 and lines[0].startswith('segnode: error: '))
    return {
        'status': code,
        'ok': code == expect and one_line and 'Traceback' not in err,
        'seconds': round(seconds, 2),
        'peak_mb': round(usage.ru_maxrss / 1024, 1),
        'stderr': (lines[-1] if lines else '')[:200],
    }


def bags(folder: Path) -> list[tuple[str, Path, int]]:
    """(name, bag, expected exit status) of the damaged bags."""
    made = []
    for name in ('cut off', 'flipped byte in a chunk', 'empty metadata'):
        path = folder / name.replace(' ', '_')
        with BagWriter(path, 'mcap') as bag:
            for k in range(12):
                image = np.full((256, 512, 3), 40 + k, np.uint8)
                t = 10**18 + k * 33_333_333
                bag.write('/cam/image_raw', t, make_image(image, 'rgb8', make_header(t)))
        (mcap,) = path.glob('*.mcap')
        data = bytearray(mcap.read_bytes())
        if name == 'cut off':
            mcap.write_bytes(bytes(data[: len(data) // 2]))
        elif name == 'flipped byte in a chunk':
            data[data.find(bytes([45]) * 64)] ^= 0xFF
            mcap.write_bytes(bytes(data))
        else:
            (path / 'metadata.yaml').write_text('')
        made.append((name, path, 0 if name == 'flipped byte in a chunk' else 2))
    return made


def frame_bags(folder: Path) -> list[tuple[str, Path, int]]:
    """Bags of 12 good 256x512 PNG frames labelled jpeg, the first frame hostile (issue 24).

    Each hostile first frame must be one bad frame (exit 0) at the peak memory of the bag
    whose first frame is good, not a decode or an engine of the size it claims.
    """
    firsts = {
        'good first frame': None,
        'first frame a 723-byte jpeg claiming 4096x4096': hostile_frames.jpeg_claiming(
            4096, 4096, nbytes=723
        ),
        'first frame a 723-byte jpeg claiming 20000x20000': hostile_frames.jpeg_claiming(
            20000, 20000, nbytes=723
        ),
        'first frame 700 random bytes': hostile_frames.random_bytes(700),
    }
    made = []
    for i, (name, first) in enumerate(firsts.items()):
        path = folder / f'frames{i}'
        with BagWriter(path, 'mcap') as bag:
            for k in range(12):
                t = 10**18 + k * 33_333_333
                image = np.full((256, 512, 3), 40 + k, np.uint8)
                fmt, data = encode_compressed(image, 'rgb8', 'png')
                if k == 0 and first is not None:
                    data = np.frombuffer(first, np.uint8)
                bag.write(
                    '/cam/image_raw/compressed', t, make_compressed('jpeg', data, make_header(t))
                )
        made.append((f'{name}, then 11 PNGs labelled jpeg', path, 0))
    return made


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--json', type=Path, help='write the results here')
    args = parser.parse_args()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix='segnode_hostile_') as tmp:
        folder = Path(tmp)
        base = hostile.valid_checkpoint(folder / 'valid.pt')
        for i, (name, damage, _) in enumerate(hostile.CHECKPOINTS):
            path = hostile.damaged_checkpoint(base, damage, folder / f'ckpt{i}.pt')
            results[f'checkpoint: {name}'] = run(['info', str(path)], 2)
            path.unlink()
        results['checkpoint: raw pickle'] = run(['info', str(hostile.raw_pickle(folder / 'p'))], 2)
        for i, (name, make, _) in enumerate(hostile.PARAMS):
            body = make()
            path = folder / f'params{i}.yaml'
            path.write_bytes(body if isinstance(body, bytes) else body.encode())
            results[f'params: {name}'] = run(['replay', str(folder), '--params', str(path)], 2)
        for name, bag, expect in [*bags(folder), *frame_bags(folder)]:
            results[f'bag: {name}'] = run(['replay', str(bag), *CPU], expect)
    for name, r in results.items():
        mark = 'ok ' if r['ok'] else 'BAD'
        print(
            f'{mark} {r["seconds"]:6.2f} s {r["peak_mb"]:7.1f} MB  exit {r["status"]}  {name}: '
            f'{r["stderr"][:80]}'
        )
    failed = [name for name, r in results.items() if not r['ok']]
    print(f'{len(results) - len(failed)} of {len(results)} cases as expected')
    if args.json:
        doc = {
            'command': 'bench/hostile_files.py',
            'machine': f'{platform.machine()}, {platform.python_version()}',
            'cases': results,
        }
        write_json(doc, args.json)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
