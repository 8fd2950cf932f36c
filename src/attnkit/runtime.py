"""Where and how a model computes: the device (``training.device``, ``--device``), the precision that
really runs there (``training.precision``), the autocast context every training and decoding loop runs
under, and moving batches to the device; and the malloc tuning the CLI applies at start.

:func:`settle` is the one function that decides what a run uses (it says so in one log line);
nothing else calls ``torch.autocast``.

glibc's malloc hands large freed blocks back to the operating system at once, so the next step's
tensors of the same sizes fault their pages in again: on this project's 2-core machine a fifth of
a Transformer training step was kernel time. Raising the mmap and trim thresholds keeps that memory
in the process (measured: about 12% more training tokens/s). Nothing happens where glibc is absent.

oneDNN, PyTorch's CPU matrix library, keeps up to 1,024 compiled matrix products with their
scratch memory; every batch of another shape adds more, and the resident memory of the demo's
training grew past 3 GB in three minutes. The CLI keeps 16 (``ONEDNN_PRIMITIVE_CACHE_CAPACITY``,
unless set): a step's forward and backward passes still find theirs, at the same speed within the
noise, and memory stays bounded (docs/BENCHMARKS.md, "Memory").
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import logging
import os
from dataclasses import dataclass, fields, is_dataclass, replace
from typing import Any

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence

from attnkit.errors import UserError

log = logging.getLogger("attnkit")

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3


ONEDNN_CACHE = "16"


def tune_malloc() -> bool:
    """Keep freed memory for reuse instead of returning it to the OS, and bound oneDNN's cache (before
    its first matrix product); True if glibc accepted the malloc settings."""
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", ONEDNN_CACHE)
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


def pick_device(spec: str = "auto") -> torch.device:
    """The device ``spec`` names (``auto``: the GPU when there is one, else the CPU); a one-line error
    for a GPU this machine lacks. Under torchrun a bare ``cuda`` is the rank's own GPU (LOCAL_RANK).
    A GPU picked becomes the process's current one, so that nothing (pinned memory, a kernel launched
    without a device) opens a context on GPU 0 when ``cuda:1`` was asked for."""
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise UserError(f"device {spec!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build of torch" if torch.version.cuda is None else "no CUDA device visible"
            raise UserError(f"device {spec}: this machine has no GPU that torch can use ({build}); use --device cpu")
        ranks = int(os.environ.get("WORLD_SIZE", "1"))
        if device.index is not None and ranks > 1:
            raise UserError(f"device {spec}: under torchrun each rank takes the GPU of its LOCAL_RANK; give "
                            "cuda (or auto), and CUDA_VISIBLE_DEVICES to choose the GPUs")
        if device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", torch.cuda.current_device())))
        if device.index >= torch.cuda.device_count():
            raise UserError(f"device {spec}: there are {torch.cuda.device_count()} GPU(s), cuda:0 to "
                            f"cuda:{torch.cuda.device_count() - 1}")
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise UserError(f"device {spec!r}: expected auto, cpu, cuda or cuda:N")
    return device


def device_of(model: torch.nn.Module) -> torch.device:
    """The device a model's weights are on (the CPU for one without any)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


@functools.cache
def effective_precision(precision: str, device_type: str = "cpu") -> str:
    """The precision a config's ``training.precision`` really runs at on a ``device_type``: bf16 where
    the CPU or GPU computes it natively, fp16 on GPUs; anything else falls back to fp32, with one
    warning."""
    if precision == "bf16" and device_type == "cpu" and not native_bf16():
        log.warning("precision bf16: this CPU (%s) has no native bf16 kernels, so running in fp32",
                    torch.backends.cpu.get_cpu_capability())
        return "fp32"
    if precision == "bf16" and device_type == "cuda" and not native_gpu_bf16():
        log.warning("precision bf16: this GPU has no bf16, so running in fp32 (fp16 is the GPU's other choice)")
        return "fp32"
    if precision == "fp16" and device_type != "cuda":
        log.warning("precision fp16: mixed fp16 is for GPUs (on a CPU it is slow and needs loss scaling "
                    "for nothing), so running in fp32; bf16 is the CPU's choice")
        return "fp32"
    return precision


def native_gpu_bf16() -> bool:
    """True where the GPU computes bf16 itself (Ampere and later), not by emulation."""
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # a torch before the argument: it did not count emulation
        return torch.cuda.is_bf16_supported()


@dataclass(frozen=True)
class Setup:
    """What a run really computes with: its device and the precision that runs there."""

    device: torch.device
    precision: str  # fp32 | bf16 | fp16, after the fallbacks of effective_precision

    def autocast(self) -> contextlib.AbstractContextManager:
        return autocast(self.precision, self.device)

    def grad_scaler(self, init_scale: float = 2.0**16) -> torch.amp.GradScaler:
        """fp16's loss scaler (gradients of small losses underflow in fp16 without it); for the other
        precisions a disabled one, which passes everything through."""
        return torch.amp.GradScaler(self.device.type, init_scale=init_scale, enabled=self.precision == "fp16")

    def describe(self) -> str:
        where = str(self.device)
        if self.device.type == "cuda":
            where += f" ({torch.cuda.get_device_name(self.device)})"
        else:
            where += f" ({torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()})"
        how = {"fp32": "fp32", "bf16": "bf16 autocast", "fp16": "fp16 autocast with loss scaling"}[self.precision]
        if self.device.type == "cuda" and self.precision == "fp32":
            how += ", TF32 matrix products"
        return f"computing on {where} in {how}"


def settle(device: str, precision: str) -> Setup:
    """The one decision of what a run uses: the device ``device`` names and the precision that runs
    there (TF32 matrix products allowed on GPUs). Logged in one line."""
    where = pick_device(device)
    setup = Setup(where, effective_precision(precision, where.type))
    if setup.device.type == "cuda":  # (pick_device made it the current GPU)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    log.info("%s", setup.describe())
    return setup


def full_precision(device: torch.device | str = "cpu") -> contextlib.AbstractContextManager:
    """Autocast switched off on ``device``'s type: what runs inside computes in the dtype it is given.
    The fp32 islands of a bf16 run (an adaptive softmax writing its clusters into one fp32 tensor,
    professor forcing's discriminator) enter it; nothing else in attnkit calls ``torch.autocast``."""
    return torch.autocast(torch.device(device).type, enabled=False)


def autocast(precision: str, device: torch.device | str = "cpu") -> contextlib.AbstractContextManager:
    """Mixed precision on ``device`` for ``precision`` bf16 or fp16 (where it runs), nothing for fp32."""
    device_type = torch.device(device).type
    chosen = effective_precision(precision, device_type)
    if chosen == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=torch.bfloat16 if chosen == "bf16" else torch.float16)


def rnn_dtype(device_type: str, autocast_dtype: torch.dtype | None) -> torch.dtype | None:
    """The dtype an RNN (LSTM, GRU) computes in under autocast of ``autocast_dtype`` on ``device_type``:
    None leaves it to autocast, a dtype runs it in that dtype with autocast off.

    On a GPU, autocast hands cuDNN's RNNs to a wrapper that casts them to fp16 whatever autocast's
    dtype (PyTorch's ``_cudnn_rnn_cast_reflatten``), so under bf16 they would run in fp16 with no loss
    scaler (the scaler is on for fp16 runs only): there they run in fp32. Under fp16 they run in fp16,
    as autocast chose, with the run's scaler. On the CPU, bf16 autocast runs oneDNN's RNN in bf16
    where oneDNN has bf16 kernels (AVX-512 and later); without them its LSTM has no bf16 version at
    all (an error on an AVX2 CPU), so it runs in fp32."""
    if autocast_dtype != torch.bfloat16:
        return None
    if device_type == "cuda" or (device_type == "cpu" and not onednn_bf16()):
        return torch.float32
    return None


@functools.cache
def onednn_bf16() -> bool:
    """True where oneDNN, PyTorch's CPU kernels, computes bf16 (natively or emulated with AVX-512)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def recurrent(rnn: torch.nn.RNNBase, x: Tensor | PackedSequence,
              hx: Tensor | tuple[Tensor, Tensor] | None = None) -> tuple[Tensor | PackedSequence, Any]:
    """``rnn(x, hx)`` (x a tensor or a PackedSequence) in the dtype :func:`rnn_dtype` chooses for the
    autocast in force: every LSTM and GRU of attnkit runs through here."""
    data = x.data if isinstance(x, PackedSequence) else x
    device_type = data.device.type
    dtype = rnn_dtype(device_type, torch.get_autocast_dtype(device_type)) \
        if torch.is_autocast_enabled(device_type) else None
    if dtype is None:
        return rnn(x, hx)
    if hx is not None:
        hx = tuple(h.to(dtype) for h in hx) if isinstance(hx, tuple) else hx.to(dtype)
    with full_precision(device_type):
        return rnn(x.to(dtype), hx)


@contextlib.contextmanager
def deterministic(enabled: bool):
    """``training.deterministic``: PyTorch's deterministic algorithms (an operation with none warns once,
    naming itself), cuDNN's deterministic kernels and a fixed cuBLAS workspace, for the duration; the
    settings before are restored after. ``CUBLAS_WORKSPACE_CONFIG`` must be set before cuBLAS starts,
    so this is entered before the first GPU product of the process."""
    if not enabled:
        yield
        return
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    workspace = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[2], before[3]
        if workspace is None:
            del os.environ["CUBLAS_WORKSPACE_CONFIG"]


def pinned(tensor: Tensor) -> Tensor:
    """A copy of ``tensor`` in page-locked memory, for an asynchronous copy to the GPU. Contiguous
    first: pinning a view pins its whole storage (the columns of a token stream would pin the stream)."""
    return tensor.contiguous().pin_memory()


def to_device(batch, device: torch.device):
    """``batch`` (a tensor, a dataclass of tensors, or a list, tuple or dict of them) with every tensor on
    ``device``. Batches are built on the CPU; for a GPU they go through pinned memory, without waiting."""
    if isinstance(batch, Tensor):
        if batch.device == device:
            return batch
        if device.type == "cuda" and batch.device.type == "cpu":
            return pinned(batch).to(device, non_blocking=True)
        return batch.to(device)
    if is_dataclass(batch) and not isinstance(batch, type):
        return replace(batch, **{f.name: to_device(getattr(batch, f.name), device) for f in fields(batch) if f.init})
    if isinstance(batch, (list, tuple)) and any(isinstance(x, Tensor) or is_dataclass(x) for x in batch):
        return type(batch)(to_device(x, device) for x in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch
