"""Process-level settings that make PyTorch on CPU faster; the CLI applies them at start.

glibc's malloc hands large freed blocks back to the operating system at once, so the next step's
tensors of the same sizes fault their pages in again: on this project's 2-core machine a fifth of
a Transformer training step was kernel time. Raising the mmap and trim thresholds keeps that memory
in the process (measured: about 12% more training tokens/s). Nothing happens where glibc is absent.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3


def tune_malloc() -> bool:
    """Keep freed memory for reuse instead of returning it to the OS; True if glibc accepted it."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = mallopt(M_MMAP_THRESHOLD, 32 << 20)  # the largest glibc allows
    ok &= mallopt(M_TRIM_THRESHOLD, 1 << 30)
    ok &= mallopt(M_TOP_PAD, 512 << 20)
    return bool(ok)
