"""The public datasets of ``../shared/data`` that attnkit does not ship, fetched where they are missing
(a Colab runtime): each file from the commit its README names, checked against its SHA-256 before it
is moved into place, so a file is either whole and right or absent."""

from __future__ import annotations

import hashlib
import urllib.request
from pathlib import Path

from attnkit.checkpoint import atomic_write
from attnkit.errors import UserError

GITHUB = "https://raw.githubusercontent.com/"
SST2 = "eyalbd2/Reproducing-AutoPrompt/6288fb5bec9c572f2492875ae0111df5b6daed11/glue_data/SST-2/"
PTB = "Lasagne/Recipes/d616658de38e69f5036b236b6acbaf6e465ec9bd/examples/penntree/"

# name -> (where it is under GITHUB, where it goes under the data folder, its SHA-256)
SOURCES: dict[str, list[tuple[str, str, str]]] = {
    "sst2": [
        (SST2 + "train_full.tsv", "sst2/glue/train.tsv",
         "48eac26399f8456935f81dd9e3a745c1430adb6c62e233ccfe22db4a0d15d1d1"),
        (SST2 + "dev.tsv", "sst2/glue/dev.tsv",
         "54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0"),
    ],
    "ptb_lm": [
        (PTB + f"ptb.{split}.txt.gz", f"ptb_lm/ptb.{split}.txt.gz", digest) for split, digest in (
            ("train", "270e0c1de69c076ee9be3fb389e0a6a3c849a03664d9a05550c6a98afd63bf4e"),
            ("valid", "2c532ce295a2a82b986b0ab85f39422d4c1a6211cc78d9d4c3b647eb827d56a5"),
            ("test", "c186c58140c532dcf89939356c67f0ceaad98baac97c3eab733c14c9ce427ffa"))
    ],
}
MAX_BYTES = 64 << 20  # none of them is near this: a larger answer is not the file


def fetch(name: str, root: str | Path, base: str = GITHUB) -> list[Path]:
    """The files of dataset ``name`` under ``root`` (``../shared/data``'s layout), each downloaded from
    ``base`` unless it is there already; a download whose SHA-256 differs is an error and leaves nothing."""
    if name not in SOURCES:
        raise UserError(f"dataset {name!r}: attnkit fetches {', '.join(SOURCES)}")
    paths = []
    for source, target, digest in SOURCES[name]:
        path = Path(root) / target
        if not path.is_file():
            _download(base + source, path, digest)
        paths.append(path)
    return paths


def _download(url: str, path: Path, digest: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=60) as answer:
            data = answer.read(MAX_BYTES + 1)
    except OSError as err:
        raise UserError(f"{url}: cannot download ({err})") from None
    if hashlib.sha256(data).hexdigest() != digest:
        raise UserError(f"{url}: not the expected file (its SHA-256 differs from {digest[:12]}...)")
    atomic_write(path, lambda tmp: tmp.write_bytes(data))
