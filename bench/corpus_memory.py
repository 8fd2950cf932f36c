"""Start-up time and memory of a training run on a corpus of 5 million pairs: read as text and encoded
(today's reader) against memory-mapped from ``attnkit prepare``.

The corpus is Multi30k's training set (29,000 pairs, embedded in the package) repeated 173 times:
synthetic in size only. Each measurement runs in a process of its own, one after another:

    text     the translation task's ``prepare`` as ``attnkit train`` runs it (read, train the
             tokenizers, encode every pair, build the model), then the first epoch's batches
    prepare  ``attnkit prepare`` (the one-time binarization)
    mapped   the same ``prepare`` with ``data.prepared``, then the first epoch's batches

and reports wall seconds and resident memory (VmHWM peak, RssAnon the process's own, RssFile pages of
mapped files, which every process on a machine shares through the page cache).

    python bench/corpus_memory.py [--repeat 173] [--work /tmp/attnkit-5m]
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

from machine import cpu  # bench/machine.py

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "multi30k-transformer.yaml"


def memory() -> dict:
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {k: round(int(status[k].split()[0]) / 1024, 1) for k in ("VmHWM", "VmRSS", "RssAnon", "RssFile")}


def measure(kind: str, work: Path) -> dict:
    """One measurement, in this process."""
    import tempfile

    from attnkit.config import load_config
    from attnkit.tasks import TASKS

    overrides = [f"data.train.src={work / 'train.en'}", f"data.train.tgt={work / 'train.de'}"]
    if kind == "mapped":
        overrides.append(f"data.prepared={work / 'corpus'}")
    cfg = load_config(CONFIG, overrides)
    start = time.monotonic()
    if kind == "prepare":
        doc = TASKS["translation"].binarize(cfg, work / "corpus")
        return {"kind": kind, "seconds": round(time.monotonic() - start, 1), "pairs": doc["pairs"], **memory()}
    with tempfile.TemporaryDirectory() as scratch:
        prepared = TASKS["translation"].prepare(cfg, Path(scratch), False)
        ready = time.monotonic() - start
        batches = prepared.epoch_batches(0)
        first_epoch = time.monotonic() - start - ready
        for idx in batches[:200]:
            prepared.make_batch(idx)
        return {"kind": kind, "start_seconds": round(ready, 1), "epoch_batches_seconds": round(first_epoch, 1),
                "batches": len(batches), **memory()}


def build(work: Path, repeat: int) -> int:
    work.mkdir(parents=True, exist_ok=True)
    pairs = 0
    for lang in ("en", "de"):
        path = work / f"train.{lang}"
        source = resources.files("attnkit") / "resources" / "multi30k" / f"train.{lang}.gz"
        lines = gzip.decompress(source.read_bytes())
        if not path.exists():
            with open(path, "wb") as out:
                for _ in range(repeat):
                    out.write(lines)
        pairs = lines.count(b"\n") * repeat
    return pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=173)
    ap.add_argument("--work", type=Path, default=Path("/tmp/attnkit-5m"))
    ap.add_argument("--one", choices=("text", "prepare", "mapped"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.work)))
        return
    pairs = build(args.work, args.repeat)
    print(json.dumps({"corpus_pairs": pairs, "cpu": cpu()}), flush=True)
    for kind in ("text", "prepare", "mapped"):
        if kind == "prepare" and (args.work / "corpus" / "corpus.json").exists():
            continue
        done = subprocess.run([sys.executable, __file__, "--one", kind, "--work", str(args.work)],
                              capture_output=True, text=True)
        print(done.stdout.strip() or done.stderr[-2000:], flush=True)


if __name__ == "__main__":
    main()
