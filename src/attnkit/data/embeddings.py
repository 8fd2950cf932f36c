"""Static word vectors (word2vec / GloVe / fastText ``.vec`` text format) into an embedding matrix.

A file is one word per line followed by its numbers; word2vec and fastText files start with a
``COUNT DIM`` header line, GloVe files do not. Plain or gzip.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from pathlib import Path

import torch

from attnkit.data.text import is_gzip
from attnkit.errors import UserError

log = logging.getLogger(__name__)

MAX_LINE = 1 << 20  # characters of one line
VECTORS_FILE = "vectors.txt"  # what a static_vectors run directory holds (tasks/static_vectors.py)


def vectors_file(path: str | Path) -> Path:
    """A vectors file given as itself or as the static_vectors run directory that holds it."""
    path = Path(path)
    return path / VECTORS_FILE if path.is_dir() else path


def load_vectors(path: str | Path, words: list[str], dim: int, lowercase_fallback: bool = True) -> tuple[
        torch.Tensor, int]:
    """A (len(words), dim) matrix holding the file's vector of each word (rows of words the file lacks
    are zero, and a word can fall back to its lowercased form); and how many words were found."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: embeddings file not found")
    needed = set(words) | ({w.lower() for w in words} if lowercase_fallback else set())
    vectors: dict[str, torch.Tensor] = {}
    opener = gzip.open if is_gzip(path) else open
    no = 0
    with opener(path, "rt", encoding="utf-8", errors="strict") as f:
        try:
            while line := f.readline(MAX_LINE):  # read as it streams, a line at a time, never a whole file
                no += 1
                if len(line) == MAX_LINE and not line.endswith("\n"):
                    raise UserError(f"{path}: line {no}: longer than {MAX_LINE:,} characters (a word and {dim} "
                                    "numbers take far fewer)")
                parts = line.rstrip().split(" ")
                if no == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):  # word2vec header
                    if int(parts[1]) != dim:
                        raise UserError(f"{path}: vectors have {parts[1]} dimensions, the model's embeddings {dim}")
                    continue
                if len(parts) != dim + 1:
                    raise UserError(f"{path}: line {no}: expected a word and {dim} numbers, found {len(parts) - 1}")
                if parts[0] in needed and parts[0] not in vectors:
                    try:
                        vector = torch.tensor([float(x) for x in parts[1:]])
                    except ValueError:
                        raise UserError(f"{path}: line {no}: a value is not a number") from None
                    if not torch.isfinite(vector).all():
                        raise UserError(f"{path}: line {no}: a value is not finite (nan or inf)")
                    vectors[parts[0]] = vector
        except UnicodeDecodeError:
            raise UserError(f"{path}: line {no + 1}: invalid UTF-8") from None
        except (OSError, EOFError, zlib.error) as err:
            raise UserError(f"{path}: broken gzip file ({err})") from None
    matrix = torch.zeros(len(words), dim)
    hits = 0
    for i, w in enumerate(words):
        vec = vectors.get(w, vectors.get(w.lower()) if lowercase_fallback else None)
        if vec is not None:
            matrix[i] = vec
            hits += 1
    log.info("%s: vectors for %d of %d vocabulary words (%.1f%%)", path, hits, len(words), 100.0 * hits / len(words))
    return matrix, hits
