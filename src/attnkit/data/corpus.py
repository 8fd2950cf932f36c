"""Binarized parallel corpora (``attnkit prepare``): what fairseq's ``preprocess`` does, without pickles.

A corpus directory holds, for each side, every sentence's token ids one after another in a flat
little-endian int32 file (``train.src.bin``) and where each sentence starts in an int64 ``.npy``
array of n + 1 offsets, plus ``corpus.json`` saying what was binarized how (the data files, the
vocabulary settings, the length limit, the vocabulary sizes, every file's SHA-256) and the tokenizers
that made the ids; opening it checks the checksums and that every id is below its vocabulary's size,
once, so a damaged corpus is a one-line error before training instead of an ``IndexError`` mid-run. Training memory-maps
the ``.bin`` files: the pages come from the operating system's cache, shared by every rank on a
machine, instead of each process holding the corpus as Python lists; batches are formed from the
lengths (offset differences) alone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from attnkit.digests import check_digests
from attnkit.errors import UserError, quoted

MANIFEST = "corpus.json"
FORMAT = 2  # 2: the manifest records the vocabulary sizes and every file's checksum
SIDES = ("src", "tgt")
CHUNK = 100_000  # sentence pairs encoded at a time


class Side(Sequence):
    """One side of a binarized corpus: ``side[i]`` is sentence i's token ids, read from the memory map."""

    def __init__(self, ids: np.ndarray, offsets: np.ndarray):
        self.ids, self.offsets = ids, offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> list[int]:
        return self.ids[self.offsets[i] : self.offsets[i + 1]].tolist()

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


@dataclass
class Binarized:
    """A training corpus read from a corpus directory: ``src[i]``, ``tgt[i]`` and the lengths of both
    sides, as :class:`attnkit.tasks.translation.Encoded` has them."""

    src: Side
    tgt: Side

    def lengths(self) -> tuple[np.ndarray, np.ndarray]:
        return self.src.lengths(), self.tgt.lengths()


class SideWriter:
    """Writes one side, a sentence at a time: ``path``.bin and, on ``close``, ``path``.offsets.npy."""

    def __init__(self, path: Path):
        self.path, self.file = path, open(f"{path}.bin", "wb")
        self.offsets, self.pending = [0], []

    def add(self, ids: list[int]) -> None:
        self.pending.extend(ids)
        self.offsets.append(self.offsets[-1] + len(ids))
        if len(self.pending) >= 1 << 20:
            self.flush()

    def flush(self) -> None:
        self.file.write(np.asarray(self.pending, dtype="<i4").tobytes())
        self.pending = []

    def close(self) -> int:
        """Finish the files; the number of tokens written."""
        self.flush()
        self.file.close()
        np.save(f"{self.path}.offsets.npy", np.asarray(self.offsets, dtype=np.int64), allow_pickle=False)
        return self.offsets[-1]


def read_side(path: Path) -> Side:
    try:
        offsets = np.load(f"{path}.offsets.npy", allow_pickle=False)
        size = Path(f"{path}.bin").stat().st_size
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: a damaged corpus ({err}); prepare it again") from None
    if (offsets.ndim != 1 or len(offsets) < 1 or offsets.dtype != np.int64 or offsets[0] != 0
            or (np.diff(offsets) < 0).any() or size != 4 * int(offsets[-1])):
        raise UserError(f"{path}.bin: does not match its offsets ({size} bytes); prepare the corpus again")
    ids = np.memmap(f"{path}.bin", dtype="<i4", mode="r") if size else np.zeros(0, dtype="<i4")
    return Side(ids, offsets)


def source_stamp(path: Path) -> dict:
    """What identifies a data file's contents cheaply: its path, size and modification time."""
    try:
        st = path.stat()
    except OSError as err:
        raise UserError(f"{path}: {err.strerror} (a prepared corpus is checked against the files it was made "
                        "from)") from None
    return {"path": str(path.resolve()), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def write_manifest(directory: Path, doc: dict) -> None:
    (directory / MANIFEST).write_text(json.dumps({"format": FORMAT, **doc}, indent=2) + "\n", encoding="utf-8")


def side_files(side: str) -> list[str]:
    return [f"train.{side}.bin", f"train.{side}.offsets.npy"]


def open_corpus(directory: Path, expected: dict) -> tuple[Binarized, dict]:
    """The corpus in ``directory``, checked against what the config would binarize (``expected``: the
    manifest's keys with the config's values; a difference is a one-line error naming the key), against
    its checksums, and its ids against its vocabulary sizes."""
    manifest = directory / MANIFEST
    if not manifest.is_file():
        raise UserError(f"data.prepared: {directory} holds no prepared corpus ({MANIFEST} is missing); make one "
                        f"with attnkit prepare CONFIG --out {directory}")
    try:
        doc = json.loads(manifest.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise UserError(f"{manifest}: damaged, not a corpus manifest ({type(err).__name__}); "
                        "prepare it again") from None
    if not isinstance(doc, dict):
        raise UserError(f"{manifest}: damaged, a JSON {type(doc).__name__}, not a corpus manifest; prepare it again")
    if doc.get("format") != FORMAT:
        raise UserError(f"{manifest}: corpus format {quoted(doc.get('format'))}, this attnkit reads {FORMAT}; "
                        "prepare it again")
    for key, value in expected.items():
        if doc.get(key) != value:
            raise UserError(f"data.prepared: {directory} was prepared with {key} {quoted(doc.get(key))}, the "
                            f"config has {quoted(value)}; prepare it again (attnkit prepare)")
    check_digests(directory, doc.get("files"), str(manifest))
    sizes = doc.get("vocab_size")
    if not isinstance(sizes, dict) or not all(type(sizes.get(side)) is int for side in SIDES):
        raise UserError(f"{manifest}: damaged, no vocabulary sizes; prepare it again")
    sides = {side: read_side(directory / f"train.{side}") for side in SIDES}
    for side, read in sides.items():
        if len(read.ids) and (int(read.ids.min()) < 0 or int(read.ids.max()) >= sizes[side]):
            raise UserError(f"{directory}/train.{side}.bin: token ids outside its vocabulary of {sizes[side]:,}; "
                            "prepare it again")
    if len(sides["src"]) != len(sides["tgt"]):
        raise UserError(f"{directory}: {len(sides['src']):,} source sentences and {len(sides['tgt']):,} target "
                        "sentences; prepare it again")
    return Binarized(sides["src"], sides["tgt"]), doc
