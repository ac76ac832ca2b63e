"""tcmalloc for CPU training: preloaded without being asked where the library is present.

glibc's allocator hands every block above 32 MB back to the kernel and maps it anew on the
next step, so a CPU training step pays for its large buffers again in page faults; tcmalloc
keeps them (docs/training.md, "Speed of one training step"). A library can only be preloaded
before the process starts, so ``segnode train`` on a CPU re-executes itself, once, with
``LD_PRELOAD`` naming tcmalloc when it finds the library and it is not loaded yet; without the
library it says in one line how to get it. ``SEGNODE_ALLOCATOR=system`` keeps glibc's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
import logging
import os
from pathlib import Path
import sys

__all__ = ['LIBRARIES', 'find_tcmalloc', 'use_tcmalloc']

# Where Debian/Ubuntu (libtcmalloc-minimal4), Fedora/RHEL (gperftools-libs) and conda put it.
LIBRARIES = (
    '/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4',
    '/usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4',
    '/usr/lib64/libtcmalloc_minimal.so.4',
    '/usr/lib/libtcmalloc_minimal.so.4',
)
# Set in the re-executed process: it never tries a second time.
_TRIED = 'SEGNODE_TCMALLOC_TRIED'
_OPT_OUT = 'SEGNODE_ALLOCATOR'
_log = logging.getLogger('segnode.train')


def find_tcmalloc(candidates: Sequence[str] = LIBRARIES) -> str | None:
    """The first tcmalloc library that exists, or None (also looked for under sys.prefix)."""
    local = str(Path(sys.prefix, 'lib', 'libtcmalloc_minimal.so.4'))
    for path in (*candidates, local):
        if Path(path).is_file():
            return path
    return None


def _loaded_allocator() -> str | None:
    try:
        maps = Path('/proc/self/maps').read_text()
    except OSError:  # not Linux: nothing to preload the Linux way
        return 'unknown'
    for name in ('tcmalloc', 'jemalloc'):
        if name in maps:
            return name
    return None


def use_tcmalloc(
    *,
    environ: Mapping[str, str] = os.environ,
    exec_: Callable[[str, list[str], dict[str, str]], object] = os.execve,
    find: Callable[[], str | None] = find_tcmalloc,
) -> None:
    """Re-execute this process with tcmalloc preloaded, or say how to get it; else return.

    Call it on a CPU run only, before any thread or worker starts. ``environ``, ``exec_`` and
    ``find`` are for tests.
    """
    if environ.get(_OPT_OUT, '') == 'system' or _loaded_allocator() is not None:
        return
    path = find()
    if path is None:
        _log.info(
            'tip: tcmalloc makes CPU training steps about 1.7x faster and segnode preloads it '
            'by itself once installed (Debian/Ubuntu: apt install libtcmalloc-minimal4; '
            'docs/training.md)'
        )
        return
    if environ.get(_TRIED):
        _log.warning('%s is preloaded but not loaded: training with the system allocator', path)
        return
    preload = ' '.join(p for p in (path, environ.get('LD_PRELOAD', '')) if p)
    env = {**environ, 'LD_PRELOAD': preload, _TRIED: '1'}
    # tcmalloc reports every allocation over 1 GB on stderr by default; a 360x480 batch has them.
    env.setdefault('TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD', str(1 << 40))
    _log.info("restarting with tcmalloc preloaded (%s; %s=system keeps glibc's)", path, _OPT_OUT)
    sys.stdout.flush()
    sys.stderr.flush()
    exec_(sys.executable, list(sys.orig_argv), env)
