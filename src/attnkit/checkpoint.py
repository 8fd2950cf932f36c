"""Checkpoints: safetensors files plus JSON metadata, written atomically.

A checkpoint file holds tensors under prefixed names (``model.``, ``optim.``, ``rng.``) and
a JSON document in the safetensors header metadata. Nothing is ever unpickled. Files are
written to a temporary name, flushed to disk and renamed over the old file, so a Ctrl-C or a kill
leaves either the old checkpoint or the new one, never half of one; a write that fails (a full disk)
leaves the old one and says which file and why.

The document carries a SHA-256 of every tensor's name, dtype, shape and bytes, checked on reading:
safetensors checks a file's layout, not its contents, so a flipped bit in the weights or a tensor
relabelled with another dtype would otherwise load and compute garbage.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from attnkit import FORMAT_VERSION, __version__
from attnkit.errors import UserError, quoted

log = logging.getLogger(__name__)


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)``, fsync, then rename to ``path``. A write that fails (a full disk, a
    read-only folder) leaves ``path`` as it was and is a one-line error naming it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as err:
        kept = "the previous one is kept" if path.exists() else "nothing was written"
        raise UserError(f"{path}: could not be written ({err.strerror or err}); {kept}") from None
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def checksum(tensors: dict[str, Tensor]) -> str:
    """SHA-256 over the tensors' names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


def model_tensors(model: nn.Module) -> tuple[dict[str, Tensor], dict[str, str]]:
    """State dict without tied duplicates, and the aliases (tied name -> stored name)."""
    tensors, aliases, seen = {}, {}, {}
    for name, t in model.state_dict().items():
        key = (t.data_ptr(), t.shape, t.stride()) if t.numel() else None
        if key is not None and key in seen:
            aliases[name] = seen[key]
            continue
        if key is not None:
            seen[key] = name
        tensors[name] = t.detach().cpu().contiguous()  # a checkpoint is the same whatever device wrote it
    return tensors, aliases


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict]:
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, slot in sd["state"].items():
        for name, value in slot.items():
            if isinstance(value, Tensor):
                tensors[f"{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{name}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_state(tensors: dict[str, Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for key, value in list(tensors.items()) + list(meta["scalars"].items()):
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(path: Path, model: nn.Module, meta: dict,
                    optimizer: torch.optim.Optimizer | None = None, extra: dict[str, Tensor] | None = None) -> None:
    """Write model weights (and optionally optimizer state and extra tensors) with ``meta``."""
    weights, aliases = model_tensors(model)
    tensors = {f"model.{k}": v for k, v in weights.items()}
    doc = {"format_version": FORMAT_VERSION, "attnkit_version": __version__, "aliases": aliases, **meta}
    if optimizer is not None:
        opt_tensors, doc["optimizer"] = optimizer_tensors(optimizer)
        tensors.update({f"optim.{k}": v for k, v in opt_tensors.items()})
    for k, v in (extra or {}).items():
        tensors[f"extra.{k}"] = v.detach().cpu().contiguous()
    doc["checksum"] = checksum(tensors)
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={"attnkit": json.dumps(doc)}))


def read_checkpoint(path: Path) -> tuple[dict[str, dict[str, Tensor]], dict]:
    """(tensors by group: "model", "optim", "extra"), metadata. Errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    try:
        groups: dict[str, dict[str, Tensor]] = {"model": {}, "optim": {}, "extra": {}}
        tensors = {}
        with safe_open(str(path), framework="pt") as f:
            doc = json.loads((f.metadata() or {}).get("attnkit", "null"))
            for key in f.keys():
                tensors[key] = f.get_tensor(key)
                group, name = key.split(".", 1)
                groups[group][name] = tensors[key]
    except (SafetensorError, OSError, ValueError, KeyError, RuntimeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"{path}: not a readable attnkit checkpoint ({reason})") from None
    if not isinstance(doc, dict) or "format_version" not in doc:
        raise UserError(f"{path}: not an attnkit checkpoint (no attnkit metadata)")
    if doc["format_version"] != FORMAT_VERSION:
        raise UserError(f"{path}: written by attnkit {doc.get('attnkit_version')} in format "
                        f"{doc['format_version']}; this attnkit reads format {FORMAT_VERSION}")
    if "checksum" not in doc:
        log.warning("%s: written before checkpoints carried a checksum; its tensors are not verified", path)
    elif checksum(tensors) != doc["checksum"]:
        raise UserError(f"{path}: damaged: its tensors do not match the checksum written with them (the file was "
                        "changed or corrupted after it was written)")
    return groups, doc


def read_document(path: Path) -> dict:
    """The metadata document of a checkpoint, without reading its tensors (not verified against them:
    :func:`read_checkpoint` does that)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            doc = json.loads((f.metadata() or {}).get("attnkit", "null"))
    except (SafetensorError, OSError, ValueError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"{path}: not a readable attnkit checkpoint ({reason[:200]})") from None
    if not isinstance(doc, dict):
        raise UserError(f"{path}: not an attnkit checkpoint (no attnkit metadata)")
    return doc


def load_weights(model: nn.Module, tensors: dict[str, Tensor], aliases: dict[str, str], source: Path) -> None:
    if not isinstance(aliases, dict) or not all(isinstance(name, str) and name in tensors
                                                for name in aliases.values()):
        raise UserError(f"{source}: damaged: its aliases (tied weights) name tensors it does not hold")
    bad = next((name for name, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())),
               None)
    if bad is not None:
        raise UserError(f"{source}: damaged: its tensor {quoted(bad)} holds values that are not finite (NaN or "
                        "infinity)")
    full = dict(tensors)
    for alias, name in aliases.items():
        full[alias] = tensors[name]
    try:
        model.load_state_dict(full, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        raise UserError(f"{source}: weights do not fit the model in its config ({first[-1].strip()})") from None
