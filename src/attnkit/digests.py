"""Checksums of the files attnkit writes beside weights: a model directory's tokenizers, a CTranslate2
export, a prepared corpus. Each is recorded (SHA-256) when the files are written and checked when they
are read, so a file damaged, truncated or swapped since is a one-line error naming it, not a model
that loads and computes garbage (safetensors checkpoints carry their own, ``checkpoint.py``)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from attnkit.errors import UserError, quoted


def file_digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def digests(directory: Path, names: Iterable[str]) -> dict[str, str]:
    """{name: SHA-256} of the files ``names`` of ``directory``."""
    return {name: file_digest(directory / name) for name in sorted(names)}


def check_digests(directory: Path, recorded: object, where: str) -> None:
    """Refuse the files of ``directory`` that ``recorded`` ({name: SHA-256}, written in ``where``) names
    and that are missing or differ."""
    if not isinstance(recorded, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                  for k, v in recorded.items()):
        raise UserError(f"{where}: damaged: its list of checksums is not a mapping of file names to digests")
    for name, digest in recorded.items():
        path = directory / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise UserError(f"{where}: damaged: it names a file outside its directory ({quoted(name)})")
        if not path.is_file():
            raise UserError(f"{directory}: incomplete, {name} is missing (listed in {where})")
        if file_digest(path) != digest:
            raise UserError(f"{path}: damaged: does not match the checksum {where} recorded for it (changed or "
                            "corrupted since it was written)")
