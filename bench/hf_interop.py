"""An imported MarianMT model's speed in attnkit, in CTranslate2 (``attnkit export --to ctranslate2``)
and in Hugging Face transformers itself, on the same sentences, and the time of the import (issue 36).

    pip install -e ".[hf,export]"
    python bench/hf_interop.py [--source DIR] [--sentences 1000] [--beams 1 5] [--batch 64]

Without ``--source`` it makes the tiny MarianMT of the tests (``tests/hf_fixtures.py``: d_model 32,
2+2 layers, SentencePiece models and 400 updates of transformers' training on 100 Multi30k lines),
as our machines cannot reach the Hub; with it, any local MarianMT directory (an OPUS-MT model).
Each system translates the first ``--sentences`` lines of Multi30k test2016 in batches of
``--batch``, greedily and with each beam of ``--beams``, with length penalty 0 (transformers divides
by length^lp, attnkit by GNMT's formula: at 0 they are the same search), so the three do the same
work; the table gives sentences/s and how many outputs equal attnkit's. One process, systems in
turn, best of ``--rounds``; prints Markdown and the CPU.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
import time
from pathlib import Path

import torch
from machine import cpu  # bench/machine.py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
TEST = ROOT / "src" / "attnkit" / "resources" / "multi30k" / "test_2016_flickr.en.gz"


def best_of(rounds: int, fn) -> tuple[float, list[str]]:
    times, out = [], None
    for _ in range(rounds):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main() -> None:
    import transformers

    from attnkit.export import export_ctranslate2
    from attnkit.hf.importer import import_hf
    from attnkit.translator import load_model_dir

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", help="a MarianMT directory (default: the tests' tiny one, made here)")
    ap.add_argument("--sentences", type=int, default=1000)
    ap.add_argument("--beams", type=int, nargs="+", default=[1, 5])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    transformers.logging.set_verbosity_error()
    work = Path(tempfile.mkdtemp(prefix="hf-interop-"))
    source = args.source
    if source is None:
        from hf_fixtures import tiny_marian

        source = str(tiny_marian(work / "marian"))
    start = time.perf_counter()
    imported = import_hf(source, work / "attnkit")
    import_seconds = time.perf_counter() - start
    exported = export_ctranslate2(imported, work / "ct2")
    with gzip.open(TEST, "rt", encoding="utf-8") as f:
        lines = [line.strip() for line in f][: args.sentences]

    ours = load_model_dir(imported, "cpu")
    d = ours.cfg.decoding.model_copy(update={"length_penalty": 0.0, "batch_size": args.batch})
    ours.cfg = ours.cfg.model_copy(update={"decoding": d})
    ct2 = load_model_dir(exported, "cpu", "ctranslate2")
    ct2.cfg = ours.cfg
    hf = transformers.MarianMTModel.from_pretrained(source).eval()
    tok = transformers.MarianTokenizer.from_pretrained(source)
    def limit(batch: list[str]) -> int:  # the batch's longest output limit, within the model's positions
        longest = max(len(ours.encode_source(s)) for s in batch)
        return min(int(longest * d.max_len_a + d.max_len_b), hf.config.max_position_embeddings - 1)

    def run_hf(beam: int) -> list[str]:
        out = []
        with torch.no_grad():
            for i in range(0, len(lines), args.batch):
                batch = lines[i : i + args.batch]
                ids = hf.generate(**tok(batch, return_tensors="pt", padding=True), num_beams=beam, do_sample=False,
                                  length_penalty=0.0, min_new_tokens=1, max_new_tokens=limit(batch),
                                  forced_eos_token_id=None)
                out += tok.batch_decode(ids, skip_special_tokens=True)
        return out

    def texts(translator, beam: int) -> list[str]:
        return [t[0].text for t in translator.translate(lines, beam=beam)]

    rows = []
    for beam in args.beams:
        systems = {"attnkit (PyTorch)": lambda b=beam: texts(ours, b),
                   "attnkit --engine ctranslate2 (float32)": lambda b=beam: texts(ct2, b),
                   "transformers generate": lambda b=beam: run_hf(b)}
        reference = None
        for name, fn in systems.items():
            seconds, out = best_of(args.rounds, fn)
            reference = reference or out
            same = sum(a == b for a, b in zip(out, reference))
            rows.append((beam, name, len(lines) / seconds, same))
    print(f"CPU: {cpu()}; torch {torch.__version__}, {torch.get_num_threads()} threads; transformers "
          f"{transformers.__version__}; source {args.source or 'the tests tiny MarianMT'}; "
          f"import {import_seconds:.2f} s")
    print("| beam | system | sentences/s | outputs equal to attnkit's |\n|---:|---|---:|---:|")
    for beam, name, speed, same in rows:
        print(f"| {beam} | {name} | {speed:.1f} | {same}/{len(lines)} |")


if __name__ == "__main__":
    main()
