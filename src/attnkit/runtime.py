"""Process-level settings that make PyTorch on CPU faster: the malloc tuning the CLI applies at
start, and the autocast context every training and decoding loop runs under.

glibc's malloc hands large freed blocks back to the operating system at once, so the next step's
tensors of the same sizes fault their pages in again: on this project's 2-core machine a fifth of
a Transformer training step was kernel time. Raising the mmap and trim thresholds keeps that memory
in the process (measured: about 12% more training tokens/s). Nothing happens where glibc is absent.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import logging

import torch

log = logging.getLogger("attnkit")

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


@functools.cache
def native_bf16() -> bool:
    """True where the CPU has bf16 instructions (AVX512-BF16 or AMX) for oneDNN's kernels. Elsewhere
    bf16 is slower than fp32, even where oneDNN accepts it: a 1024x1024 matrix product ran 150 times
    slower on an AVX2-only AMD EPYC, and 4 times slower (60 against 257 GFLOP/s) on an AVX-512
    Xeon without AVX512-BF16, whose oneDNN still reports bf16 as supported."""
    try:
        has_instructions = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
        return bool(has_instructions and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without these checks or oneDNN: no fast bf16
        return False


@functools.cache
def effective_precision(precision: str) -> str:
    """The precision a config's ``training.precision`` really runs at here: bf16 becomes fp32, with
    one warning, on a CPU without native bf16."""
    if precision == "bf16" and not native_bf16():
        log.warning("precision bf16: this CPU (%s) has no native bf16 kernels, so running in fp32",
                    torch.backends.cpu.get_cpu_capability())
        return "fp32"
    return precision


def full_precision(device: torch.device | str = "cpu") -> contextlib.AbstractContextManager:
    """Autocast switched off on ``device``'s type: what runs inside computes in the dtype it is given.
    The fp32 islands of a bf16 run (an adaptive softmax writing its clusters into one fp32 tensor,
    professor forcing's discriminator) enter it; nothing else in attnkit calls ``torch.autocast``."""
    return torch.autocast(torch.device(device).type, enabled=False)


def autocast(precision: str) -> contextlib.AbstractContextManager:
    """Mixed precision on CPU for ``precision`` "bf16" (where it is fast), nothing for "fp32"."""
    if effective_precision(precision) == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()
