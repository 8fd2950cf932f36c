"""What the machine can hold: a model, a beam or a file that would need more memory than there is is
refused before the allocation, with the arithmetic, instead of swapping for minutes or being killed."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch

from attnkit.errors import UserError

GiB = 1024**3


def machine_memory() -> int:
    """Bytes of memory this process may use: the machine's, or its control group's limit if lower."""
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            total = min(total, int(limit))
    except OSError:
        pass
    return total


def device_memory(device: torch.device | None = None) -> tuple[int, str]:
    """Bytes free for this process on ``device`` and how to name it: the machine's memory for the CPU,
    the GPU's free memory (``torch.cuda.mem_get_info``) for a GPU."""
    if device is not None and device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free, f"this GPU ({device}) has {gib(free)} free"
    have = machine_memory()
    return have, f"this machine has {gib(have)}"


def gib(n: float) -> str:
    """A size in GiB (MiB below one GiB)."""
    return f"{n / GiB:,.1f} GiB" if n >= GiB else f"{n / 2**20:,.1f} MiB"


def require_memory(what: str, need: int, arithmetic: str, fraction: float = 1.0,
                   device: torch.device | None = None) -> None:
    """Refuse ``what`` if it needs more than ``fraction`` of the memory of ``device`` (default: the
    machine's); ``arithmetic`` says how ``need`` was counted."""
    have, there = device_memory(device)
    if need > have * fraction:
        share = "" if fraction == 1.0 else f" ({fraction:.0%} of it may go to this)"
        raise UserError(f"{what}: needs {gib(need)} ({arithmetic}); {there}{share}")


def tensor_bytes(obj: object) -> int:
    """Bytes of the distinct tensors in ``obj`` (a tensor, or dataclasses, tuples, lists and dicts of them;
    a storage two tensors share counts once): what a decoder's state holds."""
    storages: dict[int, int] = {}

    def walk(x: object) -> None:
        if isinstance(x, torch.Tensor):
            storages[x.untyped_storage().data_ptr()] = x.untyped_storage().nbytes()
        elif dataclasses.is_dataclass(x) and not isinstance(x, type):
            for f in dataclasses.fields(x):
                walk(getattr(x, f.name))
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)

    walk(obj)
    return sum(storages.values())


def search_bytes(sentences: int, beam: int, vocab: int, state_bytes: int = 0) -> tuple[int, str]:
    """The peak memory of a search over ``sentences`` with ``beam`` hypotheses each, and how it was
    counted: at each step about four (rows, vocab) float32 tables (the logits, the log-probabilities,
    the candidates' scores, their top-k; two for greedy search), and the decoder states of every row
    (``state_bytes`` each at the length limit: a Transformer's cache grows with the output), twice:
    a step and a reorder each build the new states while the old ones are alive."""
    rows = sentences * beam
    tables, states = (16 if beam > 1 else 8) * rows * vocab, 2 * rows * state_bytes
    return tables + states, (f"{sentences} sentence(s) x beam {beam} x ({vocab:,} words x "
                             f"{4 if beam > 1 else 2} float32 tables a step + two decoder states of "
                             f"{gib(state_bytes)} at the length limit); lower the beam or the batch size")


def require_search_memory(sentences: int, beam: int, vocab: int, state_bytes: int = 0) -> None:
    """Refuse a search (:func:`search_bytes`) that would take more than half the machine."""
    need, arithmetic = search_bytes(sentences, beam, vocab, state_bytes)
    require_memory(f"beam {beam}", need, arithmetic, fraction=0.5)


def require_batch_memory(batch_tokens: int, vocab: int) -> None:
    """Refuse a training batch whose output scores alone would take more than half the machine: the
    (tokens, vocab) logits, their gradient and the softmax, float32."""
    require_memory(f"training.batch_tokens {batch_tokens:,}", 12 * batch_tokens * vocab,
                   f"{batch_tokens:,} tokens x {vocab:,} words x 4 bytes x 3: the logits, their gradient, the "
                   "softmax; lower it", fraction=0.5)
