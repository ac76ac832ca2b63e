"""What this machine's CPU computes natively, from the flags Linux lists in /proc/cpuinfo.

Read by the engine choice (bf16 is a candidate only where it is native) and by training (bf16
autocast is emulated, and several times slower than fp32, elsewhere).
"""

from __future__ import annotations

import platform

__all__ = ['flags', 'native_bf16']


def flags() -> set[str]:
    """The feature flags of the CPU (x86 flags, Arm Features); none where unreadable."""
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            for line in f:
                if line.startswith(('flags', 'Features')):
                    return set(line.split(':', 1)[1].split())
    except OSError:
        pass
    return set()


def native_bf16() -> bool:
    """The CPU computes bf16 natively (x86 AMX or AVX512_BF16, Arm BF16)."""
    found = flags()
    return bool(found & {'amx_bf16', 'avx512_bf16'}) or (
        platform.machine() == 'aarch64' and 'bf16' in found
    )
