"""Reading text files: one sentence per line, plain or gzip, UTF-8.

Every problem a user's file can have is a :class:`UserError` naming the file (and line):
missing, empty, not UTF-8, too large for the machine, or two sides of a parallel corpus with
different line counts. A gzip file is decompressed in chunks and refused once it passes the bound
(a gzip bomb stops there, it does not fill the memory first).
"""

from __future__ import annotations

import gzip
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

from attnkit.errors import UserError
from attnkit.limits import gib, machine_memory

log = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"


def read_lines(path: str | Path, allow_empty_file: bool = False, strip: bool = True) -> list[str]:
    """All lines of a text file (gzip detected by its magic bytes), stripped of surrounding space
    unless ``strip`` is False."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: file not found")
    if not path.is_file():
        raise UserError(f"{path}: not a regular file")
    data = file_bytes(path)
    if not data.strip() and not allow_empty_file:
        raise UserError(f"{path}: file is empty")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise UserError(f"{path}: line {line}: invalid UTF-8 (byte {data[err.start]:#04x})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.strip() for line in lines] if strip else lines


def read_utf8(path: Path) -> str:
    """The text of a small file a model directory holds (a vocabulary, labels, tags)."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: invalid UTF-8 at byte {err.start}") from None


def is_gzip(path: Path) -> bool:
    """Whether the file starts with gzip's magic bytes (read without reading the rest)."""
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def readable_bytes() -> int:
    """The most bytes of text read whole: an eighth of the machine's memory (the lines, as Python
    strings, take a few times their bytes)."""
    return machine_memory() // 8


def file_bytes(path: Path) -> bytes:
    """The bytes of a file, decompressed if it is gzip (by its magic bytes), up to ``readable_bytes()``."""
    bound = readable_bytes()
    too_big = (f"over {gib(bound)}, an eighth of this machine's memory, which a text file read whole may take; "
               "split it, or binarize a translation corpus with attnkit prepare")
    if path.stat().st_size > bound:
        raise UserError(f"{path}: {too_big}")
    if not is_gzip(path):
        return path.read_bytes()
    chunks, size = [], 0
    try:
        with gzip.open(path, "rb") as f:
            while chunk := f.read(1 << 22):
                size += len(chunk)
                if size > bound:
                    raise UserError(f"{path}: decompresses to {too_big}")
                chunks.append(chunk)
    except (OSError, EOFError, zlib.error) as err:
        raise UserError(f"{path}: broken gzip file ({err})") from None
    return b"".join(chunks)


@dataclass
class Parallel:
    """Aligned source and target sentences."""

    src: list[str]
    tgt: list[str]

    def __len__(self) -> int:
        return len(self.src)


def read_parallel(src_path: str | Path, tgt_path: str | Path, skip_empty: bool = True) -> Parallel:
    """Read a parallel corpus. Line counts must agree; pairs with an empty side are skipped
    (with a warning that counts them) when ``skip_empty``, else kept."""
    src, tgt = read_lines(src_path), read_lines(tgt_path)
    if len(src) != len(tgt):
        raise UserError(
            f"{src_path} has {len(src)} lines but {tgt_path} has {len(tgt)}: "
            "source and target files must be aligned line by line"
        )
    if skip_empty:
        keep = [i for i, (s, t) in enumerate(zip(src, tgt)) if s and t]
        skipped = len(src) - len(keep)
        if skipped:
            log.warning("%s / %s: skipped %d pair(s) with an empty line", src_path, tgt_path, skipped)
        src, tgt = [src[i] for i in keep], [tgt[i] for i in keep]
        if not src:
            raise UserError(f"{src_path} / {tgt_path}: no non-empty sentence pairs")
    return Parallel(src, tgt)
